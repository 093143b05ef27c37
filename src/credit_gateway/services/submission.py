"""Submissions from providing units (Art 11, 14-16, 22): each record checked on its own.

Checks, in order, each failure a named reason and nothing written for that record:
what the wire could not convert -> fields present, and text a database can store ->
item in the catalog -> provider authorised for the item -> subject code valid, of the kind the
record names (the kind is never guessed: an ambiguous code without it is SUBJECT_KIND_REQUIRED)
-> payload is a JSON object -> no Art 16 prohibited field -> fits the item's JSON Schema ->
the Art 22 written notice: required for an untrustworthiness item, a real number, delivered no
later than the submission -> provider's signature verifies. At the write, a subject stored as
another kind refuses the record (SUBJECT_KIND_MISMATCH): a subject is never two kinds.
Accepted records are written after the whole stream is read, in one transaction, so a stream
that ends by cancel, deadline or shutdown stores nothing; the provider's own record id makes a
resubmission idempotent (same content: DUPLICATE; other content: refused, Art 14).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jsonschema import Draft202012Validator, ValidationError

from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage import registry
from credit_gateway.caches import BoundedCache
from credit_gateway.crypto.jwks import ec_keys
from credit_gateway.crypto.signatures import verify_es256
from credit_gateway.domain import schemas
from credit_gateway.domain.art16 import prohibited_paths
from credit_gateway.domain.canonical import CanonicalError, canonical_bytes, parse_json_object
from credit_gateway.domain.catalog import Catalog, CatalogItem, Polarity
from credit_gateway.domain.identifiers import IdentifierError, SubjectKind, parse_subject_code
from credit_gateway.domain.records import (
    MAX_TEXT,
    Submission,
    WrittenNotice,
    notice_number_problem,
    unstorable,
)
from credit_gateway.domain.release import Subject as NamedSubject
from credit_gateway.domain.timestamps import civil_date
from credit_gateway.errors import Conflict, PeerError
from credit_gateway.runtime.gateway import Gateway

MAX_PAYLOAD_BYTES = 64 * 1024
FUTURE_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Violation:
    reason: str
    field: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class IncomingNotice:
    """The Art 22 notice as it came off the wire: delivered_at None when it was not sent."""

    number: str
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Incoming:
    """A record as it came off the wire, before any check."""

    provider_record_id: str
    item_code: str
    subject_code: str
    payload_json: bytes
    occurred_at: datetime | None
    notice: IncomingNotice | None
    signature: bytes
    key_id: str
    subject_kind: SubjectKind | None = None  # None: not said
    # What the wire adapter could not convert (a time finer than a microsecond, an unknown
    # subject kind): the record's rejection.
    wire_problem: Violation | None = None


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    index: int
    provider_record_id: str
    outcome: str  # ACCEPTED, DUPLICATE, REJECTED
    record_id: str = ""
    violations: tuple[Violation, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredAs:
    """Where a checked record is stored: a submission's under its provider and the provider's
    own id; a pushed record's under the origin platform and the origin's id, with its origin
    (services/push.py). `id_field` and `kind_field` are the request's fields that the store's
    own rejections (CONFLICTING_RESUBMISSION, SUBJECT_KIND_MISMATCH) name."""

    provider_id: str
    record_id: str
    origin: record_store.Origin | None = None
    id_field: str = "provider_record_id"
    kind_field: str = "subject_kind"


@dataclass(frozen=True, slots=True)
class Content:
    """A record whose content passed every check: what its provider's signature must cover."""

    index: int
    submission: Submission
    item: CatalogItem
    subject_kind: SubjectKind
    signed_bytes: bytes  # the canonical bytes of the record's signing document
    digest: str  # their SHA-256, hex
    payload_bytes: bytes  # the payload's canonical bytes, as stored

    @property
    def occurred_at_signed(self) -> str:
        return str(self.submission.signing_document()["occurred_at"])


@dataclass(frozen=True, slots=True)
class Checked:
    """A record ready to store: its content checked and its provider's signature verified;
    `submitted` is what the store writes, built on the check's thread (`SubmissionService.
    checked`) so that the write after the stream does no more than write."""

    content: Content
    stored_as: StoredAs
    submitted: record_store.Submitted


@dataclass
class Tally:
    """What a stream's checks found so far: its records' rejections, and the records to store
    (a submission's and a push's alike). Two chunks of a stream are checked at once (on two
    threads, adapters/grpc/submission.read_in_chunks), so results come by index, in any order:
    `in_order` puts the records to store back in the stream's."""

    outcomes: list[RecordOutcome] = field(default_factory=list)
    pending: list[Checked] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, index: int, record_id: str, checked: Checked | Violation) -> None:
        """Record `index`'s result: rejected (under `record_id`), or checked to store."""
        with self._lock:
            if isinstance(checked, Violation):
                self.outcomes.append(rejected(index, record_id, checked))
            else:
                self.pending.append(checked)

    def in_order(self) -> list[Checked]:
        return sorted(self.pending, key=lambda c: c.content.index)


@dataclass
class Batch:
    """One submission stream while it is read: what its records are checked against, and what
    the checks found so far. Nothing is written until `SubmissionService.finish`."""

    provider_id: str
    catalog: Catalog
    keys: dict[str, ec.EllipticCurvePublicKey]
    tally: Tally = field(default_factory=Tally)


class Abandoned(Exception):
    """The client went away (cancel, deadline, shutdown) before its answer: roll back."""


@dataclass
class SubmissionService:
    gateway: Gateway
    # By catalog version and item: a few hundred at most, bounded so that catalog loads over a
    # long life do not accumulate them.
    _validators: BoundedCache[
        tuple[str, str], tuple[Draft202012Validator, schemas.Check | None]
    ] = field(default_factory=lambda: BoundedCache(1024))

    def submit(self, provider_id: str, records: Iterable[Incoming]) -> list[RecordOutcome]:
        """A whole submission at once: begin, check, finish."""
        batch = self.begin(provider_id)
        self.check(batch, records)
        return self.finish(batch)

    def begin(self, provider_id: str) -> Batch:
        gw = self.gateway
        jwks = registry.participant_jwks(gw.db, provider_id) or {"keys": []}
        return Batch(provider_id, gw.catalog.get(), ec_keys(jwks))

    def check(self, batch: Batch, records: Iterable[Incoming], first: int = 0) -> None:
        """Checks records as they arrive (the stream's reader hands them over in chunks, the
        first of each at its index `first` in the stream)."""
        now = self.gateway.clock()
        provider = batch.provider_id
        may_submit = _provides(provider)
        for index, incoming in enumerate(records, first):
            content = self.content(index, incoming, provider, may_submit, batch.catalog, now)
            checked = (
                content
                if isinstance(content, Violation)
                else signature_problem(content, incoming, batch.keys)
                or self.checked(content, incoming, StoredAs(provider, incoming.provider_record_id))
            )
            batch.tally.add(index, incoming.provider_record_id, checked)

    def finish(
        self, batch: Batch, abandoned: Callable[[], bool] = lambda: False
    ) -> list[RecordOutcome]:
        """Writes the accepted records in ONE transaction, after the whole stream was read and
        checked: a stream that breaks a limit midway, or whose client goes away before it is
        answered (`abandoned()` is asked just before the commit), leaves no trace."""
        stored = self.store(batch.tally.in_order(), abandoned)
        return sorted(batch.tally.outcomes + stored, key=lambda o: o.index)

    def content(
        self,
        index: int,
        incoming: Incoming,
        provider: str,
        may_submit: Callable[[CatalogItem], Violation | None],
        catalog: Catalog,
        now: datetime,
    ) -> Content | Violation:
        """The record's content checked, or the first thing wrong with it: every check but the
        signature's (`signed`). `provider` is who its signing document names as "provider";
        `may_submit` says why that provider may not submit an item, or None when it may (a
        providing unit: the catalog names it; a push: the platform's agreement covers it)."""
        if incoming.wire_problem is not None:
            return incoming.wire_problem
        unstorable = _unstorable_text(incoming)
        if unstorable is not None:
            text_field, why = unstorable
            return reject("UNSTORABLE_TEXT", text_field, f"no database stores it: {why}")
        if not incoming.provider_record_id or len(incoming.provider_record_id) > MAX_TEXT:
            return reject(
                "MISSING_FIELD", "provider_record_id", f"required, at most {MAX_TEXT} characters"
            )
        if incoming.occurred_at is None:
            return reject("MISSING_FIELD", "occurred_at", "required")
        if incoming.occurred_at > now + FUTURE_SKEW:
            return reject("INVALID_TIME", "occurred_at", "lies in the future")
        item = catalog.item(incoming.item_code)
        if item is None:
            return reject(
                "NOT_IN_CATALOG", "item_code", f"{incoming.item_code!r} is not a catalog item"
            )
        refused = may_submit(item)
        if refused is not None:
            return refused
        try:
            subject_kind, parsed = parse_subject_code(
                incoming.subject_code, today=civil_date(now), kind=incoming.subject_kind
            )
        except IdentifierError as exc:
            # SUBJECT_KIND_REQUIRED and SUBJECT_KIND_MISMATCH are about the kind the record says.
            field = "subject_kind" if exc.reason != "BAD_IDENTIFIER" else "subject_code"
            return reject(exc.reason, field, f"{exc.rule}: {exc.message}")
        if len(incoming.payload_json) > MAX_PAYLOAD_BYTES:
            return reject("PAYLOAD_TOO_LARGE", "payload_json", f"at most {MAX_PAYLOAD_BYTES} bytes")
        try:
            payload = parse_json_object(incoming.payload_json)
            payload_bytes = canonical_bytes(payload)
        except CanonicalError as exc:
            return reject("PAYLOAD_NOT_JSON", "payload_json", str(exc))
        prohibited = prohibited_paths(payload, catalog.prohibited_fields)
        if prohibited:
            return reject(
                "ART16_PROHIBITED",
                prohibited[0],
                "information that must not be aggregated (Art 16)",
            )
        error = self._schema_error(catalog, item, payload)
        if error is not None:
            return reject("SCHEMA_VIOLATION", _field_path(error), error.message)
        if item.polarity is Polarity.UNTRUSTWORTHY and incoming.notice is None:
            return reject(
                "ART22_NOTICE_MISSING",
                "notice",
                "untrustworthiness information needs the written notice given to the subject",
            )
        notice: WrittenNotice | None = None
        if incoming.notice is not None:  # checked on any item that carries one: it is signed
            checked_notice = _notice(incoming.notice, now)
            if isinstance(checked_notice, Violation):
                return checked_notice
            notice = checked_notice
        submission = Submission(
            provider,
            incoming.provider_record_id,
            item.code,
            parsed.value,
            payload,
            incoming.occurred_at,
            notice,
            incoming.subject_kind,
        )
        data = submission.signing_bytes()
        digest = hashlib.sha256(data).hexdigest()
        return Content(index, submission, item, subject_kind, data, digest, payload_bytes)

    def _schema_error(
        self, catalog: Catalog, item: CatalogItem, payload: dict[str, Any]
    ) -> ValidationError | None:
        """What is wrong with the payload under the item's schema, or None. The schema's
        predicate (domain/schemas.py) passes most payloads; jsonschema decides the rest."""
        validator, passes = self._validators.get_or_make(
            (catalog.version, item.code),
            lambda: (Draft202012Validator(dict(item.schema)), schemas.compiled(item.schema)),
        )
        if passes is not None and passes(payload):
            return None
        return next(iter(validator.iter_errors(payload)), None)

    def store(self, batch: list[Checked], abandoned: Callable[[], bool]) -> list[RecordOutcome]:
        """The checked records in one transaction, each its outcome; Abandoned, with nothing
        stored, if `abandoned()` says so just before the commit."""
        if not batch:
            return []
        gw = self.gateway
        submitted = [c.submitted for c in batch]
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
        return [_outcome(c, s) for c, s in zip(batch, stored, strict=True)]

    def checked(self, content: Content, incoming: Incoming, stored_as: StoredAs) -> Checked:
        """The record to store, `content` with its provider's signature (verified), where
        `stored_as` says."""
        return Checked(content, stored_as, self._submitted(content, incoming, stored_as))

    def _submitted(
        self, content: Content, incoming: Incoming, at: StoredAs
    ) -> record_store.Submitted:
        s = content.submission
        subject = NamedSubject(
            content.subject_kind, s.subject_code, self.gateway.subject_lookup(s.subject_code)
        )
        record = record_store.NewRecord(
            provider_id=at.provider_id,
            provider_record_id=at.record_id,
            item_code=s.item_code,
            subject_id="",  # the store's: the subject's id once looked up or added
            occurred_at=s.occurred_at,
            digest=content.digest,
            payload=content.payload_bytes,
            signature=incoming.signature,
            signer_kid=incoming.key_id,
            notice=s.notice,
            seal=content.item.sealed_at_rest,
            origin=at.origin,
            disclosure_until=content.item.disclosure_until(s.payload, s.occurred_at),
        )
        return record_store.Submitted(subject, record, content.item)


def _provides(provider_id: str) -> Callable[[CatalogItem], Violation | None]:
    """A providing unit submits the items the catalog names it a provider of."""

    def refused(item: CatalogItem) -> Violation | None:
        if provider_id in item.providers:
            return None
        return reject(
            "PROVIDER_NOT_AUTHORISED", "item_code", f"{provider_id} does not provide {item.code}"
        )

    return refused


def signature_problem(
    content: Content, incoming: Incoming, keys: Mapping[str, ec.EllipticCurvePublicKey]
) -> Violation | None:
    """Why the provider's signature does not verify under `keys` (by `incoming.key_id`), or
    None."""
    key = keys.get(incoming.key_id)
    if key is None:
        return reject("BAD_SIGNATURE", "key_id", "not a key the provider registered")
    try:
        verify_es256(key, content.signed_bytes, incoming.signature, what="record")
    except PeerError:
        # The usual cause is a timestamp rendered otherwise: say which form was verified.
        return reject(
            "BAD_SIGNATURE",
            "signature",
            "does not verify over the record's canonical bytes (docs/canonical.md), "
            f"with occurred_at as {content.occurred_at_signed}",
        )
    return None


def reject(reason: str, path: str = "", description: str = "") -> Violation:
    """A record's rejection: `reason`, at `path` (a field or a JSON path into the payload).
    scripts/gen_reasons.py lists every reason spelt in a call of this."""
    return Violation(reason, path, description)


def bad_time(path: str, description: str) -> Violation:
    """A time the wire carried that is not one (finer than a microsecond, out of range)."""
    return reject("INVALID_TIME", path, description)


def unknown_subject_kind(description: str) -> Violation:
    """A subject kind this gateway does not know (a newer client's enum value)."""
    return reject(
        "UNKNOWN_SUBJECT_KIND", "subject_kind", f"not a kind this gateway knows: {description}"
    )


def rejected(index: int, provider_record_id: str, violation: Violation) -> RecordOutcome:
    return RecordOutcome(index, provider_record_id, "REJECTED", violations=(violation,))


def _outcome(c: Checked, s: record_store.Stored) -> RecordOutcome:
    rid = c.stored_as.record_id
    if s.stored_kind is not None:
        violation = reject(
            "SUBJECT_KIND_MISMATCH",
            c.stored_as.kind_field,
            f"this subject is held as {s.stored_kind.value}, not {c.content.subject_kind.value}; "
            "a subject is one kind",
        )
        return rejected(c.content.index, rid, violation)
    if s.new:
        return RecordOutcome(c.content.index, rid, "ACCEPTED", s.record_id)
    return _resubmission(c, s.record_id, s.digest)


def _unstorable_text(incoming: Incoming) -> tuple[str, str] | None:
    """(field, why) for the first text of the record that a database could not store: refused
    here, for this record alone, the same on every database (else PostgreSQL fails the batch's
    write). Only the texts that are stored are asked; the rest are matched against known
    values (item, key id) or validated (subject code)."""
    texts = [("provider_record_id", incoming.provider_record_id)]
    if incoming.notice is not None:
        texts.append(("notice.number", incoming.notice.number))
    for name, text in texts:
        why = unstorable(text)
        if why is not None:
            return name, why
    return None


def _notice(incoming: IncomingNotice, now: datetime) -> WrittenNotice | Violation:
    """The Art 22 notice, or why it is not one. `now` is the submission: the notice must have
    reached the subject by then (the regulation orders it only before the delivery; it may
    precede occurred_at, as a prior notice of a punishment precedes the decision)."""
    if len(incoming.number) > MAX_TEXT:
        return reject("FIELD_TOO_LONG", "notice.number", f"at most {MAX_TEXT} characters")
    problem = notice_number_problem(incoming.number)
    if problem is not None:
        return reject("NOTICE_NUMBER_INVALID", "notice.number", f"not a notice number: {problem}")
    if incoming.delivered_at is None:
        return reject("MISSING_FIELD", "notice.delivered_at", "required")
    if incoming.delivered_at > now:
        return reject(
            "ART22_NOTICE_LATE",
            "notice.delivered_at",
            "later than the submission: the subject is informed before the information is "
            "delivered (Art 22)",
        )
    return WrittenNotice(incoming.number, incoming.delivered_at)


def _resubmission(c: Checked, record_id: str, digest: str) -> RecordOutcome:
    """The same provider id again: the same content is a duplicate, other content is refused."""
    rid, index = c.stored_as.record_id, c.content.index
    if digest == c.content.digest:
        return RecordOutcome(index, rid, "DUPLICATE", record_id)
    violation = reject(
        "CONFLICTING_RESUBMISSION",
        c.stored_as.id_field,
        "this id came before with other content; records are not altered (Art 14)",
    )
    return rejected(index, rid, violation)


def _field_path(error: ValidationError) -> str:
    """Where to fix it: a missing required property is named, not just its parent object."""
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        if missing:
            return f"{error.json_path}.{missing[0]}"
    return str(error.json_path)
