"""Opaque identifiers: a readable prefix and 128 random bits, so replicas never coordinate."""

from __future__ import annotations

import base64
import secrets


def new_id(prefix: str) -> str:
    return prefix + "_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()
