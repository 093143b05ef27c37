"""The change feed's cursor: opaque text a subscriber resumes from. Pure.

A cursor names the seq of the last change delivered (every change up to it was, in this or an
earlier batch), bound to the agreement it was given under by an HMAC-SHA256 under a key derived
from the master key (CURSOR_KEY_LABEL), so a subscriber can neither move it nor use it under
another agreement. Every replica derives the same key, so a cursor resumes on any of them.

    cursor = base64url_nopad( version (1 byte) || seq (8 bytes, big-endian) || tag (16 bytes) )
    tag    = HMAC-SHA256(key, "credit-gateway/feed-cursor/v1" || 0x00 || agreement_id || 0x00
                         || version || seq)[:16]

Whatever does not verify (bad base64, a non-canonical encoding, another length or version, a
tag that does not match) is one error, CURSOR_INVALID, whatever the cause (as Fernet tokens
fail: the caller learns nothing from which check failed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from credit_gateway.errors import InvalidArgument

CURSOR_KEY_LABEL = "credit-gateway feed cursor key v1"  # MasterKey.derive label of the key
VERSION = 1
_CONTEXT = b"credit-gateway/feed-cursor/v1"
_SEQ_BYTES = 8
_TAG_BYTES = 16  # 128 bits: a forgery is a 2^-128 guess per try
_RAW = 1 + _SEQ_BYTES + _TAG_BYTES
MAX_TEXT = 64  # the encoding of _RAW bytes is 34 characters: anything longer is refused unread
MAX_SEQ = 2**63 - 1  # the seq column is a signed 64-bit integer


def _tag(key: bytes, agreement_id: str, head: bytes) -> bytes:
    message = b"".join((_CONTEXT, b"\x00", agreement_id.encode(), b"\x00", head))
    return hmac.new(key, message, hashlib.sha256).digest()[:_TAG_BYTES]


def encode_cursor(key: bytes, agreement_id: str, seq: int) -> str:
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"seq out of range: {seq}")
    head = bytes([VERSION]) + seq.to_bytes(_SEQ_BYTES, "big")
    raw = head + _tag(key, agreement_id, head)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(key: bytes, agreement_id: str, text: str) -> int:
    """The seq the cursor names, if it verifies for this agreement; else InvalidArgument
    CURSOR_INVALID."""
    raw = _raw(text)
    head, tag = raw[: 1 + _SEQ_BYTES], raw[1 + _SEQ_BYTES :]
    # The tag is compared before the version or seq are looked at, in constant time.
    if not hmac.compare_digest(tag, _tag(key, agreement_id, head)) or head[0] != VERSION:
        raise _invalid()
    seq = int.from_bytes(head[1:], "big")
    if seq > MAX_SEQ:  # cannot be made by encode_cursor
        raise _invalid()
    return seq


def _raw(text: str) -> bytes:
    if len(text) > MAX_TEXT or not text.isascii():
        raise _invalid()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _invalid() from None
    # One text per cursor: a non-canonical encoding (stray low bits) is not the same cursor.
    if len(raw) != _RAW or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:
        raise _invalid()
    return raw


def _invalid() -> InvalidArgument:
    return InvalidArgument.field(
        "cursor",
        "not a cursor this gateway gave for this agreement: subscribe with an empty cursor",
        reason="CURSOR_INVALID",
    )
