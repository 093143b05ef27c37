"""Records leave service into the archive on a right (Art 30-31): a providing unit's signed
credit restoration decision for an untrustworthiness record it provided, and a subject's
application to delete its commendation, volunteer service or donation record.

The rules are domain/restoration.py; this module gives them their inputs (the clock, the
catalog, the provider's registered keys, the record's payload opened to find its disclosure
period) and runs each call as one transaction on storage/restorations.py: the record read under
its row lock, then the decision's row, the record's disclosure end, the audit entry and the
archive (with the change feed's RESTORED or DELETED) written together. Every read path's policy
reads the record's state, so from the commit on it is released nowhere; the row stays, as the
archive.

Asked again for what was done already (the same decision's bytes, a record already deleted),
the call answers what the first one did and writes nothing. A refusal decided on what was read
(the provider's keys, the record) rolls its transaction back and is then recorded alone, as
consent/lifecycle.py's are; a malformed request, refused before any read, is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage import registry
from credit_gateway.adapters.storage import restorations as store
from credit_gateway.adapters.storage.archive import DELETED, RESTORED
from credit_gateway.crypto.jwks import ec_keys
from credit_gateway.crypto.signatures import verify_es256
from credit_gateway.domain.audit import SELF
from credit_gateway.domain.canonical import parse_json_object
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.release import open_record, parse_subject
from credit_gateway.domain.restoration import (
    APPLY_DELETION,
    OUTCOME_DELETED,
    OUTCOME_RESTORED,
    SUBMIT_RESTORATION,
    RestorationDecision,
    check_decided,
    check_deletable,
    check_restorable,
    check_timing,
    disclosure_end,
)
from credit_gateway.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PeerError,
)
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.decided import Seen, refusals_on_record


@dataclass(frozen=True, slots=True)
class Archived:
    """A record out of service: when, why (storage/archive's RESTORED or DELETED) and the audit
    entry of the transition."""

    record_id: str
    item_code: str
    archived_at: datetime
    archive_reason: str
    audit_entry_id: str


class ArchiveService:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def restore(self, decision: RestorationDecision, signature: bytes, key_id: str) -> Archived:
        """Art 30: the provider's signed decision takes its record out of service."""
        gw = self.gateway
        now = gw.clock()
        check_decided(decision, now)
        catalog = gw.catalog.get()
        seen = Seen(SUBMIT_RESTORATION, decision.provider_id, now)
        with refusals_on_record(gw, seen):
            self._verify(decision, signature, key_id)
            with gw.db.transaction() as session:
                held = store.provided_record(
                    session, decision.provider_id, decision.provider_record_id
                )
                if held is None:
                    raise NotFound(
                        "no record of that provider_record_id among yours",
                        reason="RECORD_NOT_FOUND",
                    )
                record = held.record
                seen.subject_id, seen.items = held.subject_id, (record.item_code,)
                document = decision.signing_bytes()
                kept = store.restoration_of(session, record.id)
                if kept is not None and kept.document == document:
                    return _archived(held, kept.id)  # this decision, again: as it was
                item = check_restorable(record.item_code, catalog.item(record.item_code))
                _in_service(held)
                # The period can depend on the payload (a punishment's severity): opened as
                # the release path opens it (sealed at rest for a non-open item).
                payload = parse_json_object(open_record(gw.envelope, record, ()).payload)
                check_timing(decision, record.occurred_at, item.period_for(payload))
                until = record.disclosure_until or item.disclosure_until(
                    payload, record.occurred_at
                )
                entry = seen.entry(OUTCOME_RESTORED)
                kept_as = store.NewRestoration(
                    decision.decision_number, decision.decided_at, document, signature, key_id
                )
                store.restore(
                    session,
                    gw.audit.mac_key,
                    held,
                    kept_as,
                    disclosure_end(until, decision),
                    entry,
                    now,
                )
                return Archived(record.id, record.item_code, now, RESTORED, entry.id)

    def delete(self, subject_code: str, record_id: str) -> Archived:
        """Art 31: the subject's commendation, volunteer service or donation record leaves
        service on its application."""
        gw = self.gateway
        now = gw.clock()
        # The subject's own calls name it by the code its real-name portal asserted: a person.
        _, code = parse_subject(subject_code, now, SubjectKind.NATURAL_PERSON)
        catalog = gw.catalog.get()
        seen = Seen(APPLY_DELETION, SELF, now)
        with refusals_on_record(gw, seen), gw.db.transaction() as session:
            subject = record_store.find_subject(session, gw.subject_lookup(code))
            held = None
            if subject is not None and subject.kind is SubjectKind.NATURAL_PERSON:
                seen.subject_id = subject.id
                held = store.owned_record(session, subject.id, record_id)
            if held is None:  # another's record is answered as none: nothing is revealed
                raise NotFound("no such record of yours", reason="RECORD_NOT_FOUND")
            record = held.record
            seen.items = (record.item_code,)
            if held.archive_reason == DELETED:  # deleted already: as it was
                return _archived(held, store.deletion_entry_id(session, held))
            check_deletable(record.item_code, catalog.item(record.item_code))
            _in_service(held)
            entry = seen.entry(OUTCOME_DELETED)
            store.delete(session, gw.audit.mac_key, held, entry, now)
            return Archived(record.id, record.item_code, now, DELETED, entry.id)

    def _verify(self, decision: RestorationDecision, signature: bytes, key_id: str) -> None:
        """The provider's ES256 signature over the decision's canonical bytes, by a key of its
        registered JWKS (as a submitted record's, services/submission.py)."""
        jwks = registry.participant_jwks(self.gateway.db, decision.provider_id) or {"keys": []}
        key = ec_keys(jwks).get(key_id)
        if key is None:
            raise InvalidArgument.field(
                "key_id", "not a key the provider registered", reason="BAD_SIGNATURE"
            )
        try:
            verify_es256(key, decision.signing_bytes(), signature, what="restoration decision")
        except PeerError as exc:
            raise InvalidArgument.field(
                "signature",
                "does not verify over the decision's canonical bytes (docs/canonical.md), "
                f"with decided_at as {decision.signing_document()['decided_at']}",
                reason="BAD_SIGNATURE",
            ) from exc


def _in_service(held: store.Held) -> None:
    if not held.record.in_service:
        raise FailedPrecondition(
            f"the record left service already ({held.archive_reason})", reason="NOT_IN_SERVICE"
        )


def _archived(held: store.Held, entry_id: str) -> Archived:
    # Out of service: both are set.
    assert held.archived_at is not None
    assert held.archive_reason is not None
    record = held.record
    return Archived(record.id, record.item_code, held.archived_at, held.archive_reason, entry_id)
