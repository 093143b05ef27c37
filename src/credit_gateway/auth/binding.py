"""RFC 8705 certificate binding: the `x5t#S256` confirmation of a client certificate."""

from __future__ import annotations

import base64
import hashlib
import hmac


def x5t_s256(der: bytes) -> str:
    """RFC 8705 section 3.1: base64url (no padding) SHA-256 of the DER certificate."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def same_thumbprint(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
