"""A submitted record (Art 11, 14-16, 22) and the canonical bytes its provider signs."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.timestamps import canonical_timestamp

# v2: the Art 22 notice became a structured `notice` (number and delivery time), was the free
# text `notice_reference` in v1; the kind of subject the provider names is signed.
FORMAT = "credit-gateway/record/v2"

MAX_TEXT = 128  # a provider record id or a notice number: the columns' width
MIN_NOTICE_NUMBER = 2


@dataclass(frozen=True, slots=True)
class WrittenNotice:
    """Art 22: the written notice a providing unit gave the subject before delivering
    untrustworthiness information, by its number and when it reached the subject."""

    number: str
    delivered_at: datetime

    def document(self) -> dict[str, str]:
        return {
            "number": self.number,
            "delivered_at": canonical_timestamp(self.delivered_at, "notice.delivered_at"),
        }


@dataclass(frozen=True, slots=True)
class Submission:
    provider_id: str
    provider_record_id: str
    item_code: str
    subject_code: str  # normalised
    payload: dict[str, Any]
    occurred_at: datetime
    notice: WrittenNotice | None
    # The kind the provider says the code names (None: not said, the code names one kind only).
    subject_kind: SubjectKind | None = None

    def signing_document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "provider": self.provider_id,
            "provider_record_id": self.provider_record_id,
            "item": self.item_code,
            "subject": self.subject_code,
            "subject_kind": None if self.subject_kind is None else self.subject_kind.value,
            "payload": self.payload,
            "occurred_at": canonical_timestamp(self.occurred_at, "occurred_at"),
            "notice": None if self.notice is None else self.notice.document(),
        }

    def signing_bytes(self) -> bytes:
        return canonical_bytes(self.signing_document())


def unstorable(text: str) -> str | None:
    """Why a database could not store `text` as it is, or None. U+0000 is the one character:
    PostgreSQL refuses it in text, and one record of a batch must not fail the others' write.
    (Protobuf delivers only valid UTF-8, so no lone surrogate reaches here; SQLite and MariaDB's
    utf8mb4 store every other character.)"""
    if "\x00" in text:
        return "U+0000 (NUL), which PostgreSQL cannot hold in text"
    return None


# The characters a notice number may hold: letters, marks, digits, punctuation and symbols (the
# Unicode general categories L, M, N, P, S), and U+0020 between them. Refused: controls (a tab),
# format characters (U+200B ZERO WIDTH SPACE, U+FEFF, bidi marks), other spaces and separators,
# private-use and unassigned code points: text a reader cannot see or type back.
_NOTICE_CATEGORIES = frozenset("LMNPS")


def notice_number_problem(number: str) -> str | None:
    """What makes `number` not a notice number, or None. A notice number is what a subject or an
    objection reviewer looks the notice up by: at least MIN_NOTICE_NUMBER visible characters, one
    of them a decimal digit (official document numbers, 发文字号, carry the year and sequence in
    Arabic digits: GB/T 9704-2012 7.2.4), so " ", "x" or "--" are not one. Length and storability
    are checked before (FIELD_TOO_LONG, UNSTORABLE_TEXT)."""
    if not number.strip():
        return "blank"
    if number != number.strip(" "):
        return "leading or trailing space"
    for char in number:
        if char != " " and unicodedata.category(char)[0] not in _NOTICE_CATEGORIES:
            return f"U+{ord(char):04X} ({unicodedata.category(char)}) is not a visible character"
    if len(number) < MIN_NOTICE_NUMBER:
        return f"at least {MIN_NOTICE_NUMBER} characters"
    if not any(unicodedata.category(char) == "Nd" for char in number):
        return "has no decimal digit"
    return None


# What each sealed value is bound to (the AES-GCM associated data): a ciphertext moved to another
# row does not open. One spelling for the side that seals and the side that opens.
def subject_aad(lookup: str) -> bytes:
    """A subject's sealed code, bound to the subject's lookup key."""
    return b"subject:" + lookup.encode()


def record_aad(record_id: str) -> bytes:
    """A record's sealed payload, bound to the record's id."""
    return b"record:" + record_id.encode()
