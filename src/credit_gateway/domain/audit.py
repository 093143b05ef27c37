"""An audit entry: one decision (release or refusal), as canonical bytes and an RFC 9162 leaf.

The body names who asked, about whom (the subject's internal id, never its code), what, why,
under which agreement and consent, and what came of it, so the log proves what happened without
itself disclosing personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.timestamps import canonical_timestamp

FORMAT = "credit-gateway/audit/v1"
# json's C encoder writes RFC 8785 for what a body holds: ASCII keys (so Python's sort is the
# canonical order), strings (escaped as canonical_bytes escapes them: by json), lists of
# strings, a small int and nulls. tests/unit/audit: equal to canonical_bytes on any entry.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    at: datetime
    caller: str
    method: str
    subject_id: str | None
    purpose: str
    items: tuple[str, ...]
    outcome: str
    reasons: tuple[str, ...]
    agreement_id: str | None = None
    consent_id: str | None = None
    released_records: tuple[str, ...] = ()
    withheld_records: int = 0
    request_id: str | None = None  # the consent request the decision is about

    def body(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "id": self.id,
            "at": canonical_timestamp(self.at, "at"),
            "caller": self.caller,
            "method": self.method,
            "subject": self.subject_id,
            "purpose": self.purpose,
            "items": list(self.items),
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "agreement": self.agreement_id,
            "consent": self.consent_id,
            "released": list(self.released_records),
            "withheld": self.withheld_records,
            "request": self.request_id,
        }
        try:
            return _ENCODER.encode(doc).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: refused as canonical_bytes refuses it
            return canonical_bytes(doc)


SELF = "self"  # the subject, as the caller of its own calls: never named by its code
OPERATOR = "operator"  # the center's operator, at the command line

# The decisions that are not inquiries into a subject's information: consent changes, by the
# subject or the grantee, and the operator's actions. Art 19 para 2 keeps "inquiry records",
# which ListInquiries shows the subject; these are in the log (and the subject's evidence
# bundle) but not among its inquiries.
CONSENT_METHODS = frozenset(
    {
        "GrantConsent",
        "RevokeConsent",
        "PauseConsent",
        "ResumeConsent",
        "RequestConsent",
        "ApproveConsentRequest",
        "RejectConsentRequest",
    }
)
OPERATOR_METHODS = frozenset(
    {
        "participants.add",
        "participants.suspend",
        "participants.licence",
        "agreements.register",
        "agreements.suspend",
        "subjects.register-key",
        "catalog.load",
        "audit.prune",
        "peers.add",
        "outbox.retry",
        "outbox.purge",
        "feed.prune",
    }
)
# Art 29-31: a subject's objection or application, a providing unit's answer or restoration.
RIGHTS_METHODS = frozenset(
    {"FileObjection", "AnswerObjection", "SubmitRestoration", "ApplyDeletion"}
)
# The time rules `maintain` applies (caller OPERATOR): each transition is an entry.
MAINTAIN_METHODS = frozenset(
    {
        "maintain.objection-suspended",
        "maintain.disclosure-ended",
        "maintain.consent-expired",
        "maintain.inquiries-pruned",
    }
)
NOT_INQUIRIES = CONSENT_METHODS | OPERATOR_METHODS | RIGHTS_METHODS | MAINTAIN_METHODS
REFUSED = "REFUSED"  # as a release's Outcome.REFUSED: every refusal reads alike in the log


def decision_entry(
    *,
    at: datetime,
    caller: str,
    method: str,
    outcome: str,
    reasons: tuple[str, ...] = (),
    subject_id: str | None = None,
    consent_id: str | None = None,
    agreement_id: str | None = None,
    request_id: str | None = None,
    purpose: str = "",
    items: tuple[str, ...] = (),
) -> AuditEntry:
    """The entry of a decision other than a release: a consent change, an operator's action, a
    subject's right exercised or answered, a time rule applied. Its method must be one of
    NOT_INQUIRIES, so none of them is ever shown as an inquiry."""
    if method not in NOT_INQUIRIES:
        raise ValueError(f"{method!r} is not a consent change, right or operator action")
    return AuditEntry(
        id=new_id("aud"),
        at=at,
        caller=caller,
        method=method,
        subject_id=subject_id,
        purpose=purpose,
        items=items,
        outcome=outcome,
        reasons=reasons,
        agreement_id=agreement_id,
        consent_id=consent_id,
        request_id=request_id,
    )


def call_refusal(
    *,
    at: datetime,
    caller: str,
    method: str,
    outcome: str,
    reasons: tuple[str, ...],
    agreement_id: str | None,
    purpose: str = "",
    id_prefix: str = "aud",
) -> AuditEntry:
    """The entry of a call refused as a whole, about no one subject: a push without an agreement
    in force, a subscription refused at open or ended by its agreement. (A release's refusal
    is the release path's entry; these calls have no release flow to write one.)"""
    return AuditEntry(
        id=new_id(id_prefix),
        at=at,
        caller=caller,
        method=method,
        subject_id=None,
        purpose=purpose,
        items=(),
        outcome=outcome,
        reasons=reasons,
        agreement_id=agreement_id,
    )


def leaf_hash(body: bytes) -> bytes:
    """RFC 9162 section 2.1.1: MTH of one entry is SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + body).digest()


MAC_LABEL = "credit-gateway audit entry mac v1"  # MasterKey.derive label of the MAC key


def entry_mac(key: bytes, body: bytes) -> bytes:
    """HMAC-SHA256 of an entry's body. The key is derived from the master key, which the
    database never holds: a row inserted behind the gateway's back cannot carry a valid MAC."""
    return hmac.new(key, body, hashlib.sha256).digest()


def mac_matches(key: bytes, body: bytes, mac: bytes | None) -> bool:
    return mac is not None and hmac.compare_digest(entry_mac(key, body), mac)
