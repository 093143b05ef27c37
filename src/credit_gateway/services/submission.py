"""Submissions from providing units (Art 11, 14-16, 22): each record checked on its own.

Checks, in order, each failure a named reason and nothing written for that record:
fields present -> item in the catalog -> provider authorised for the item -> subject code valid ->
payload is a JSON object -> no Art 16 prohibited field -> fits the item's JSON Schema ->
untrustworthiness record carries the Art 22 notice reference -> provider's signature verifies.
Accepted records are written after the whole stream is read, in one transaction, so a stream
that ends by cancel, deadline or shutdown stores nothing; the provider's own record id makes a
resubmission idempotent (same content: DUPLICATE; other content: refused, Art 14).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec
from jsonschema import Draft202012Validator, ValidationError

from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage import registry
from credit_gateway.caches import BoundedCache
from credit_gateway.crypto.jwks import ec_keys
from credit_gateway.crypto.signatures import verify_es256
from credit_gateway.domain.canonical import CanonicalError, canonical_bytes, parse_json_object
from credit_gateway.domain.catalog import Catalog, CatalogItem, DisclosureLevel, Polarity
from credit_gateway.domain.identifiers import IdentifierError, SubjectKind, parse_subject_code
from credit_gateway.domain.records import Submission, prohibited_paths
from credit_gateway.domain.release import Subject as NamedSubject
from credit_gateway.errors import Conflict, PeerError
from credit_gateway.runtime.gateway import Gateway

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_NOTICE = 128  # the column's width
FUTURE_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A record as it came off the wire, before any check."""

    provider_record_id: str
    item_code: str
    subject_code: str
    payload_json: bytes
    occurred_at: datetime | None
    notice_reference: str
    signature: bytes
    key_id: str


@dataclass(frozen=True, slots=True)
class Violation:
    reason: str
    field: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    index: int
    provider_record_id: str
    outcome: str  # ACCEPTED, DUPLICATE, REJECTED
    record_id: str = ""
    violations: tuple[Violation, ...] = ()


@dataclass
class _Checked:
    index: int
    submission: Submission
    item: CatalogItem
    subject_kind: SubjectKind
    digest: str
    signature: bytes
    key_id: str


@dataclass
class Batch:
    """One submission stream while it is read: what its records are checked against, and what
    the checks found so far. Nothing is written until `SubmissionService.finish`."""

    provider_id: str
    catalog: Catalog
    keys: dict[str, ec.EllipticCurvePublicKey]
    count: int = 0
    outcomes: list[RecordOutcome] = field(default_factory=list)
    pending: list[_Checked] = field(default_factory=list)


class Abandoned(Exception):
    """The client went away (cancel, deadline, shutdown) before its answer: roll back."""


@dataclass
class SubmissionService:
    gateway: Gateway
    # By catalog version and item: a few hundred at most, bounded so that catalog loads over a
    # long life do not accumulate them.
    _validators: BoundedCache[tuple[str, str], Draft202012Validator] = field(
        default_factory=lambda: BoundedCache(1024)
    )

    def submit(self, provider_id: str, records: Iterable[Incoming]) -> list[RecordOutcome]:
        """A whole submission at once: begin, check, finish."""
        batch = self.begin(provider_id)
        self.check(batch, records)
        return self.finish(batch)

    def begin(self, provider_id: str) -> Batch:
        gw = self.gateway
        jwks = registry.participant_jwks(gw.db, provider_id) or {"keys": []}
        return Batch(provider_id, gw.catalog.get(), ec_keys(jwks))

    def check(self, batch: Batch, records: Iterable[Incoming]) -> None:
        """Checks records as they arrive (the stream's reader hands them over in chunks)."""
        now = self.gateway.clock()
        for incoming in records:
            checked = self._check(
                batch.count, batch.provider_id, incoming, batch.catalog, batch.keys, now
            )
            batch.count += 1
            if isinstance(checked, RecordOutcome):
                batch.outcomes.append(checked)
            else:
                batch.pending.append(checked)

    def finish(
        self, batch: Batch, abandoned: Callable[[], bool] = lambda: False
    ) -> list[RecordOutcome]:
        """Writes the accepted records in ONE transaction, after the whole stream was read and
        checked: a stream that breaks a limit midway, or whose client goes away before it is
        answered (`abandoned()` is asked just before the commit), leaves no trace."""
        stored = self._store(batch.pending, abandoned)
        return sorted(batch.outcomes + stored, key=lambda o: o.index)

    def _check(
        self,
        index: int,
        provider_id: str,
        incoming: Incoming,
        catalog: Catalog,
        keys: dict[str, ec.EllipticCurvePublicKey],
        now: datetime,
    ) -> _Checked | RecordOutcome:
        def reject(reason: str, path: str = "", description: str = "") -> RecordOutcome:
            return RecordOutcome(
                index,
                incoming.provider_record_id,
                "REJECTED",
                violations=(Violation(reason, path, description),),
            )

        if not incoming.provider_record_id or len(incoming.provider_record_id) > 128:
            return reject("MISSING_FIELD", "provider_record_id", "required, at most 128 characters")
        if incoming.occurred_at is None:
            return reject("MISSING_FIELD", "occurred_at", "required")
        if incoming.occurred_at > now + FUTURE_SKEW:
            return reject("INVALID_TIME", "occurred_at", "lies in the future")
        item = catalog.item(incoming.item_code)
        if item is None:
            return reject(
                "NOT_IN_CATALOG", "item_code", f"{incoming.item_code!r} is not a catalog item"
            )
        if provider_id not in item.providers:
            return reject(
                "PROVIDER_NOT_AUTHORISED",
                "item_code",
                f"{provider_id} does not provide {item.code}",
            )
        try:
            subject_kind, parsed = parse_subject_code(incoming.subject_code, today=now.date())
        except IdentifierError as exc:
            return reject("BAD_IDENTIFIER", "subject_code", f"{exc.rule}: {exc.message}")
        if len(incoming.payload_json) > MAX_PAYLOAD_BYTES:
            return reject("PAYLOAD_TOO_LARGE", "payload_json", f"at most {MAX_PAYLOAD_BYTES} bytes")
        try:
            payload = parse_json_object(incoming.payload_json)
            canonical_bytes(payload)
        except CanonicalError as exc:
            return reject("PAYLOAD_NOT_JSON", "payload_json", str(exc))
        prohibited = prohibited_paths(payload, catalog.prohibited_fields)
        if prohibited:
            return reject(
                "ART16_PROHIBITED",
                prohibited[0],
                "information that must not be aggregated (Art 16)",
            )
        error = next(iter(self._validator(catalog, item).iter_errors(payload)), None)
        if error is not None:
            return reject("SCHEMA_VIOLATION", _field_path(error), error.message)
        if len(incoming.notice_reference) > MAX_NOTICE:
            return reject("FIELD_TOO_LONG", "notice_reference", f"at most {MAX_NOTICE} characters")
        if item.polarity is Polarity.UNTRUSTWORTHY and not incoming.notice_reference:
            return reject(
                "ART22_NOTICE_MISSING",
                "notice_reference",
                "untrustworthiness information needs the written notice given to the subject",
            )
        submission = Submission(
            provider_id,
            incoming.provider_record_id,
            item.code,
            parsed.value,
            payload,
            incoming.occurred_at,
            incoming.notice_reference,
        )
        document = submission.signing_document()
        data = canonical_bytes(document)
        key = keys.get(incoming.key_id)
        if key is None:
            return reject("BAD_SIGNATURE", "key_id", "not a key the provider registered")
        try:
            verify_es256(key, data, incoming.signature, what="record")
        except PeerError:
            # The usual cause is a timestamp rendered otherwise: say which form was verified.
            return reject(
                "BAD_SIGNATURE",
                "signature",
                "does not verify over the record's canonical bytes (docs/canonical.md), "
                f"with occurred_at as {document['occurred_at']}",
            )
        return _Checked(
            index,
            submission,
            item,
            subject_kind,
            hashlib.sha256(data).hexdigest(),
            incoming.signature,
            incoming.key_id,
        )

    def _validator(self, catalog: Catalog, item: CatalogItem) -> Draft202012Validator:
        return self._validators.get_or_make(
            (catalog.version, item.code), lambda: Draft202012Validator(dict(item.schema))
        )

    def _store(self, batch: list[_Checked], abandoned: Callable[[], bool]) -> list[RecordOutcome]:
        if not batch:
            return []
        gw = self.gateway
        submitted = [self._submitted(c) for c in batch]
        try:
            stored = record_store.store_submission(
                gw.db, gw.envelope, submitted, gw.clock(), abandoned, careful=False
            )
        except Conflict:
            # A concurrent submission stored one of these ids (or subjects) first: go again,
            # record by record, so each finds what the other stored.
            stored = record_store.store_submission(
                gw.db, gw.envelope, submitted, gw.clock(), abandoned, careful=True
            )
        if stored is None:
            raise Abandoned  # nothing was stored
        return [
            RecordOutcome(c.index, c.submission.provider_record_id, "ACCEPTED", s.record_id)
            if s.new
            else _resubmission(c, s.record_id, s.digest)
            for c, s in zip(batch, stored, strict=True)
        ]

    def _submitted(self, c: _Checked) -> record_store.Submitted:
        s = c.submission
        subject = NamedSubject(
            c.subject_kind, s.subject_code, self.gateway.subject_lookup(s.subject_code)
        )
        record = record_store.NewRecord(
            provider_id=s.provider_id,
            provider_record_id=s.provider_record_id,
            item_code=s.item_code,
            subject_id="",  # the store's: the subject's id once looked up or added
            occurred_at=s.occurred_at,
            digest=c.digest,
            payload=canonical_bytes(s.payload),
            signature=c.signature,
            signer_kid=c.key_id,
            notice_reference=s.notice_reference or None,
            # Non-open items are sealed at rest; open ones are public anyway.
            seal=any(level is not DisclosureLevel.OPEN for level in c.item.disclosure.values()),
        )
        return record_store.Submitted(subject, record)


def _resubmission(c: _Checked, record_id: str, digest: str) -> RecordOutcome:
    """The same provider id again: the same content is a duplicate, other content is refused."""
    rid = c.submission.provider_record_id
    if digest == c.digest:
        return RecordOutcome(c.index, rid, "DUPLICATE", record_id)
    violation = Violation(
        "CONFLICTING_RESUBMISSION",
        "provider_record_id",
        "this id came before with other content; records are not altered (Art 14)",
    )
    return RecordOutcome(c.index, rid, "REJECTED", violations=(violation,))


def _field_path(error: ValidationError) -> str:
    """Where to fix it: a missing required property is named, not just its parent object."""
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        if missing:
            return f"{error.json_path}.{missing[0]}"
    return str(error.json_path)
