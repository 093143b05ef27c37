"""Opaque identifiers: a readable prefix and 128 random bits, so replicas never coordinate.

The bits are written in lower-case RFC 4648 base32 without padding: 26 characters, the last
holding three bits and two zero bits. `base64.b32encode` is Python code in 3.11 (8.5 µs an id,
one a stored record or audit entry); `_base32` writes the same characters ten bits at a time
(tests/unit/domain/test_ids.py holds the two equal).
"""

from __future__ import annotations

import secrets

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)  # by a pair's ten bits
_SHIFTS = tuple(range(120, -1, -10))  # 130 bits: the 128 and b32encode's two zero bits


def new_id(prefix: str) -> str:
    return prefix + "_" + _base32(secrets.token_bytes(16))


def _base32(sixteen: bytes) -> str:
    bits = int.from_bytes(sixteen, "big") << 2
    return "".join([_PAIRS[(bits >> shift) & 0x3FF] for shift in _SHIFTS])
