"""Records a national or provincial platform pushes (ExchangeService.PushRecords, Art 20 para 3,
21): each checked as a providing unit's submission is, plus what its origin vouches for.

The call. The caller is a platform (auth/scopes admits exchange.push) holding an agreement in
force for push (policy.naming, on policy.not_in_force: the one definition); its records are
checked against the items its in-force push agreements cover, together. Holding none, the call
is refused PERMISSION_DENIED before anything is read: AGREEMENT_REQUIRED when no agreement of
the platform names push, else why the first of them (by id) is not in force; the refusal is an
audit entry (method PushRecords, outcome REFUSED) committed in the transaction that decided it.
The agreements are asked again just before the write, so a stream read while its agreement was
suspended or expired stores nothing it no longer covers.

A record, each failure a named reason and nothing written for that record (the record's own
fields are named as PushedRecord holds them, under `record.`):
origin_record_id, then provider_code, present and storable (MISSING_FIELD, UNSTORABLE_TEXT) ->
the record's content, as a submission's (services/submission.py), with provider_code as the
signing document's "provider" and "the agreement covers the item" (ITEM_NOT_AGREED) in place
of "the catalog names the provider" -> the origin's signature (domain/pushed.OriginClaim) by a
key of the platform's registered JWKS (ORIGIN_SIGNATURE_INVALID) -> provider_jwks a JWK Set of
public P-256 keys (PROVIDER_KEYS_INVALID) -> the provider's signature under those keys
(BAD_SIGNATURE). The origin's signature is checked before the provider's keys are used: those
keys are trusted only because the origin vouched for them.

Stored as a submission is (one transaction after the whole stream; a stream abandoned stores
nothing), under the platform's participant id and origin_record_id, so a push is idempotent by
(origin platform, origin record id): the same content again is a DUPLICATE, other content
CONFLICTING_RESUBMISSION. A result's provider_record_id is that origin_record_id. The record
keeps the provider's signature and key id, the digest of the provider's canonical bytes, and
its origin (records.Origin: provider code, provider JWKS as pushed, origin signature and key).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.errors import JoseError

from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage import registry
from credit_gateway.caches import BoundedCache
from credit_gateway.crypto.jwks import ec_keys
from credit_gateway.crypto.signatures import verify_es256
from credit_gateway.domain.agreements import Agreement, AgreementStatus, Operation
from credit_gateway.domain.audit import REFUSED, AuditEntry, call_refusal
from credit_gateway.domain.canonical import CanonicalError, parse_json_object
from credit_gateway.domain.catalog import Catalog, CatalogItem
from credit_gateway.domain.decisions import Reason
from credit_gateway.domain.policy import AgreementState, naming
from credit_gateway.domain.pushed import OriginClaim
from credit_gateway.domain.records import MAX_TEXT, unstorable
from credit_gateway.errors import PeerError, PermissionDenied
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.submission import (
    Checked,
    Incoming,
    RecordOutcome,
    StoredAs,
    SubmissionService,
    Tally,
    Violation,
    reject,
    rejected,
    signature_problem,
)

METHOD = "PushRecords"  # the refusals' audit entries
RECORD = "record."  # where a pushed record's own fields sit in a PushedRecord
MAX_PROVIDER_CODE = 64  # records.origin_provider_code's width
# A provider's keys, as pushed and as stored (records.provider_jwks, TEXT: 64 KiB on MariaDB).
MAX_JWKS_BYTES = 16 * 1024

Keys = dict[str, ec.EllipticCurvePublicKey]


@dataclass(frozen=True, slots=True)
class PushedIncoming:
    """A pushed record as it came off the wire, before any check."""

    record: Incoming
    provider_code: str
    provider_jwks: bytes
    origin_record_id: str
    origin_signature: bytes
    origin_key_id: str


@dataclass(frozen=True, slots=True)
class PushRights:
    """What a platform may push now: the items of its agreements in force for push, together;
    or, with none, why not (`refusal`) and which agreement that is about, if one."""

    agreements: tuple[Agreement, ...]
    refusal: Reason | None = None
    refused_agreement: str | None = None

    def covers(self, item: CatalogItem) -> bool:
        return any(agreement.covers_item(item) for agreement in self.agreements)


def push_rights(
    agreements: Iterable[tuple[Agreement, AgreementStatus]], now: datetime
) -> PushRights:
    """The platform's push rights at `now`, from its agreements (ordered by id). Pure."""
    naming_push = naming((AgreementState(a, s) for a, s in agreements), Operation.PUSH, now)
    in_force = tuple(state.agreement for state, why in naming_push if why is None)
    if in_force:
        return PushRights(in_force)
    if not naming_push:
        return PushRights((), Reason.AGREEMENT_REQUIRED)
    first, why = naming_push[0]
    return PushRights((), why, first.agreement.id)


def refusal_entry(platform_id: str, rights: PushRights, now: datetime) -> AuditEntry:
    """The audit entry of a push call refused for want of an agreement in force. Pure."""
    assert rights.refusal is not None
    return call_refusal(
        at=now,
        caller=platform_id,
        method=METHOD,
        outcome=REFUSED,
        reasons=(rights.refusal.value,),
        agreement_id=rights.refused_agreement,
    )


def provider_keys(jwks: bytes) -> Keys | Violation:
    """The public P-256 keys of a pushed JWK Set, or why it is not one we take and store. Pure.
    A private key is refused rather than dropped: the set is stored as pushed."""

    def invalid(why: str) -> Violation:
        return reject("PROVIDER_KEYS_INVALID", "provider_jwks", f"not a JWK Set we take: {why}")

    if len(jwks) > MAX_JWKS_BYTES:
        return invalid(f"more than {MAX_JWKS_BYTES} bytes")
    try:
        document = parse_json_object(jwks)  # UTF-8, no duplicate member: stored as text
    except CanonicalError as exc:
        return invalid(str(exc))
    members = document.get("keys")
    if not isinstance(members, list) or not all(isinstance(k, dict) for k in members):
        return invalid('"keys" is not a list of JWKs')
    for member in members:
        if "d" in member:
            return invalid("it holds a private key")
        kid = member.get("kid", "")
        # A kid becomes the stored signer_kid: as wide as the column, and storable.
        if not isinstance(kid, str) or len(kid) > MAX_TEXT or unstorable(kid) is not None:
            return invalid(f"a kid is not a storable text of at most {MAX_TEXT} characters")
    try:
        keys = ec_keys(document)
    except (ValueError, TypeError, JoseError) as exc:  # a member no JWK parser makes sense of
        return invalid(f"a key does not parse: {exc}")
    if not keys:
        return invalid("no EC P-256 public key")
    return keys


def verify_origin(pushed: PushedIncoming, record_digest: str, keys: Keys) -> Violation | None:
    """Why the origin's signature does not verify under the platform's `keys`, or None. Pure."""
    key = keys.get(pushed.origin_key_id)
    if key is None:
        return reject(
            "ORIGIN_SIGNATURE_INVALID", "origin_key_id", "not a key the platform registered"
        )
    claim = OriginClaim(
        pushed.origin_record_id,
        pushed.provider_code,
        pushed.provider_jwks,
        record_digest,
        pushed.record.signature,
    )
    try:
        verify_es256(key, claim.signing_bytes(), pushed.origin_signature, what="origin")
    except PeerError:
        return reject(
            "ORIGIN_SIGNATURE_INVALID",
            "origin_signature",
            "does not verify over the pushed record's canonical bytes (docs/canonical.md)",
        )
    return None


def _text_problem(name: str, text: str, limit: int) -> Violation | None:
    """A stored text that is missing, too long, or that no database stores."""
    why = unstorable(text)
    if why is not None:
        return reject("UNSTORABLE_TEXT", name, f"no database stores it: {why}")
    if not text or len(text) > limit:
        return reject("MISSING_FIELD", name, f"required, at most {limit} characters")
    return None


def _in_record(violation: Violation) -> Violation:
    """A violation of the record's own fields, named where PushedRecord holds them (a JSON path
    into the payload stays as it is)."""
    if not violation.field or violation.field.startswith("$"):
        return violation
    return replace(violation, field=RECORD + violation.field)


def _agreed(rights: PushRights) -> Callable[[CatalogItem], Violation | None]:
    def refused(item: CatalogItem) -> Violation | None:
        if rights.covers(item):
            return None
        return reject(
            "ITEM_NOT_AGREED", "item_code", f"no push agreement in force covers {item.code}"
        )

    return refused


@dataclass
class PushBatch:
    """One push stream while it is read. Nothing is written until `PushService.finish`."""

    platform_id: str
    catalog: Catalog
    origin_keys: Keys
    rights: PushRights
    tally: Tally = field(default_factory=Tally)


@dataclass
class PushService:
    gateway: Gateway
    records: SubmissionService  # the submission's checks and its store
    # A stream's records mostly share their provider's keys: parsed once, by the exact bytes
    # (bounded: at most this many sets of at most MAX_JWKS_BYTES each are held).
    _provider_keys: BoundedCache[bytes, Keys | Violation] = field(
        default_factory=lambda: BoundedCache(256)
    )

    def begin(self, platform_id: str) -> PushBatch:
        """The stream's batch; refused (on record) unless a push agreement is in force."""
        rights = self._rights(platform_id)
        jwks = registry.participant_jwks(self.gateway.db, platform_id) or {"keys": []}
        return PushBatch(platform_id, self.gateway.catalog.get(), ec_keys(jwks), rights)

    def check(self, batch: PushBatch, records: Iterable[PushedIncoming], first: int = 0) -> None:
        """Checks records as they arrive (the stream's reader hands them over in chunks, the
        first of each at its index `first` in the stream)."""
        now = self.gateway.clock()
        may_submit = _agreed(batch.rights)
        for index, pushed in enumerate(records, first):
            checked = self._check(batch, pushed, index, may_submit, now)
            batch.tally.add(index, pushed.origin_record_id, checked)

    def finish(
        self, batch: PushBatch, abandoned: Callable[[], bool] = lambda: False
    ) -> list[RecordOutcome]:
        """Writes the accepted records in ONE transaction once the whole stream was read, under
        the agreements in force now: a record whose item they no longer cover is rejected."""
        rights = self._rights(batch.platform_id)
        may_submit = _agreed(rights)
        keep: list[Checked] = []
        dropped: list[RecordOutcome] = []
        for checked in batch.tally.in_order():
            refused = may_submit(checked.content.item)
            if refused is None:
                keep.append(checked)
            else:
                index, record_id = checked.content.index, checked.stored_as.record_id
                dropped.append(rejected(index, record_id, _in_record(refused)))
        stored = self.records.store(keep, abandoned)
        return sorted(batch.tally.outcomes + dropped + stored, key=lambda o: o.index)

    def _rights(self, platform_id: str) -> PushRights:
        """The platform's push rights now; PermissionDenied when it has none, the refusal
        committed as an audit entry in the transaction that read the agreements."""
        gw = self.gateway
        now = gw.clock()
        with gw.db.transaction() as session:
            rights = push_rights(agreement_store.list_agreements(session, platform_id), now)
            if rights.refusal is not None:
                entry = refusal_entry(platform_id, rights, now)
                audit_store.append(session, gw.audit.mac_key, entry)
        if rights.refusal is not None:
            raise PermissionDenied(
                f"refused: {rights.refusal.value} (an agreement in force naming push)",
                reason=rights.refusal.value,
            )
        return rights

    def _check(
        self,
        batch: PushBatch,
        pushed: PushedIncoming,
        index: int,
        may_submit: Callable[[CatalogItem], Violation | None],
        now: datetime,
    ) -> Checked | Violation:
        """The pushed record checked, or the first thing wrong with it (the module's order)."""
        problem = _text_problem("origin_record_id", pushed.origin_record_id, MAX_TEXT)
        problem = problem or _text_problem("provider_code", pushed.provider_code, MAX_PROVIDER_CODE)
        if problem is not None:
            return problem
        record = pushed.record
        content = self.records.content(
            index, record, pushed.provider_code, may_submit, batch.catalog, now
        )
        if isinstance(content, Violation):
            return _in_record(content)
        problem = verify_origin(pushed, content.digest, batch.origin_keys)
        if problem is not None:
            return problem
        jwks = pushed.provider_jwks
        keys = (
            self._provider_keys.get_or_make(jwks, lambda: provider_keys(jwks))
            if len(jwks) <= MAX_JWKS_BYTES  # a key of a bounded size, or no cache at all
            else provider_keys(jwks)
        )
        if isinstance(keys, Violation):
            return keys
        problem = signature_problem(content, record, keys)
        if problem is not None:
            return _in_record(problem)
        origin = record_store.Origin(
            pushed.provider_code,
            pushed.provider_jwks.decode(),  # UTF-8: provider_keys parsed it
            pushed.origin_signature,
            pushed.origin_key_id,
            record.provider_record_id,
        )
        stored_as = StoredAs(
            batch.platform_id,
            pushed.origin_record_id,
            origin,
            id_field="origin_record_id",
            kind_field=RECORD + "subject_kind",
        )
        return self.records.checked(content, record, stored_as)
