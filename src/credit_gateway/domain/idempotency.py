"""Retries that release once (issue #11 item 16), without I/O: the key, the request's
fingerprint, and the recorded answer as bytes to seal.

A counted call (QueryOpen, QueryAuthorized, ShareGovernment) may carry an `idempotency-key`. The
release that answers it records, in its own transaction, the key (scoped to the caller and the
method), the fingerprint of the request and the answer, sealed (it holds non-open payloads) and
bound to caller, method and key. A retry with the key within `RETENTION` gets that answer again
and counts nothing; the same key with another request is refused (IDEMPOTENCY_KEY_REUSED) and
changes nothing. A refusal is not recorded: a retry is decided afresh. docs/design.md, "Retries
and idempotency", says the rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.errors import InvalidArgument

HEADER = "idempotency-key"
MAX_KEY = 128
RETENTION = timedelta(hours=24)
_FINGERPRINT_FORMAT = "credit-gateway/idempotent-request/v1"


def check_key(values: list[str]) -> str | None:
    """The key the call's metadata carries (every value of the header), or None for none. One
    key, 1 to 128 characters of printable ASCII without surrounding spaces, else
    IDEMPOTENCY_KEY_INVALID: a key the client did not mean must not pass for one."""
    if not values:
        return None
    problem = None
    if len(values) > 1:
        problem = "give one idempotency-key"
    else:
        (key,) = values
        if not 1 <= len(key) <= MAX_KEY:
            problem = f"an idempotency-key is 1 to {MAX_KEY} characters"
        elif not all(" " <= c <= "~" for c in key) or key != key.strip(" "):
            problem = "an idempotency-key is printable ASCII, without surrounding spaces"
        else:
            return key
    raise InvalidArgument.field(HEADER, problem, reason="IDEMPOTENCY_KEY_INVALID")


@dataclass(frozen=True, slots=True)
class Keyed:
    """A call's idempotency key, scoped to its caller and method."""

    caller: str
    method: str
    key: str

    def aad(self) -> bytes:
        """What the recorded answer is sealed to: it opens for this caller, method and key only."""
        return b"idempotent-answer:" + canonical_bytes([self.caller, self.method, self.key])


def fingerprint(
    method: str,
    subject_lookup: str,
    kind: SubjectKind,
    items: tuple[str, ...],
    purpose: str,
    agreement_id: str | None,
    consent_token: str | None,
) -> str:
    """SHA-256 over what makes the request this request. The subject enters by its lookup key
    (a keyed hash): a hash of an identity number alone would be reversed by trying them all."""
    return hashlib.sha256(
        canonical_bytes(
            {
                "format": _FINGERPRINT_FORMAT,
                "method": method,
                "subject": subject_lookup,
                "kind": kind.value,
                "items": list(items),
                "purpose": purpose,
                "agreement": agreement_id,
                "consent_token": consent_token,
            }
        )
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class Recorded:
    """A recorded answer as read: its request's fingerprint, its inquiry and the sealed answer."""

    fingerprint: str
    inquiry_id: str
    answer_key_id: str
    answer: bytes
    created_at: datetime

    def honoured(self, now: datetime) -> bool:
        return now - self.created_at < RETENTION


@dataclass(frozen=True, slots=True)
class NewRecord:
    """Written with the release, unless another call recorded the key first (then the attempt
    is redone, and answers as that one). `replaces_stale`: an entry past RETENTION holds the
    key, and is deleted first."""

    keyed: Keyed
    fingerprint: str
    inquiry_id: str
    answer_key_id: str
    answer: bytes
    created_at: datetime
    replaces_stale: bool = False
