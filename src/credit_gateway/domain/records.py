"""A submitted record (Art 11, 14-16, 22) and the canonical bytes its provider signs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.timestamps import canonical_timestamp

FORMAT = "credit-gateway/record/v1"


@dataclass(frozen=True, slots=True)
class Submission:
    provider_id: str
    provider_record_id: str
    item_code: str
    subject_code: str  # normalised
    payload: dict[str, Any]
    occurred_at: datetime
    notice_reference: str

    def signing_document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "provider": self.provider_id,
            "provider_record_id": self.provider_record_id,
            "item": self.item_code,
            "subject": self.subject_code,
            "payload": self.payload,
            "occurred_at": canonical_timestamp(self.occurred_at, "occurred_at"),
            "notice_reference": self.notice_reference,
        }

    def signing_bytes(self) -> bytes:
        return canonical_bytes(self.signing_document())


def prohibited_paths(payload: Any, prohibited: frozenset[str], path: str = "$") -> list[str]:
    """Art 16 para 2 (1): every place in the payload whose key names prohibited information."""
    found: list[str] = []
    if isinstance(payload, dict):
        for key, value in payload.items():
            here = f"{path}.{key}"
            if key.lower() in prohibited:
                found.append(here)
            found += prohibited_paths(value, prohibited, here)
    elif isinstance(payload, list):
        for i, value in enumerate(payload):
            found += prohibited_paths(value, prohibited, f"{path}[{i}]")
    return found


# What each sealed value is bound to (the AES-GCM associated data): a ciphertext moved to another
# row does not open. One spelling for the side that seals and the side that opens.
def subject_aad(lookup: str) -> bytes:
    """A subject's sealed code, bound to the subject's lookup key."""
    return b"subject:" + lookup.encode()


def record_aad(record_id: str) -> bytes:
    """A record's sealed payload, bound to the record's id."""
    return b"record:" + record_id.encode()
