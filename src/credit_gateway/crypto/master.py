"""The gateway's master secret and the keys derived from it (HKDF-SHA256, RFC 5869).

One 32-byte secret in a 0600 file; every other secret of the gateway is either derived from it
with a distinct label or stored wrapped under a key derived from it. Replicas share the file.
"""

from __future__ import annotations

import hmac
import os
import secrets
from hashlib import sha256
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from credit_gateway.errors import ConfigError

MASTER_KEY_BYTES = 32


class MasterKey:
    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) != MASTER_KEY_BYTES:
            raise ConfigError("master key must be 32 bytes")
        self._secret = secret

    def __repr__(self) -> str:
        return "MasterKey(<secret>)"

    @classmethod
    def load(cls, path: Path) -> MasterKey:
        try:
            return cls(bytes.fromhex(path.read_text().strip()))
        except OSError as exc:
            raise ConfigError(f"cannot read master key {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigError(f"master key {path} is not 64 hex digits") from exc

    @classmethod
    def create(cls, path: Path) -> MasterKey:
        """Write a new secret, 0600 from creation; refuse to overwrite an existing one."""
        secret = secrets.token_bytes(MASTER_KEY_BYTES)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret.hex() + "\n")
        return cls(secret)

    def derive(self, label: str, length: int = 32) -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(),
            length=length,
            salt=None,
            info=b"credit_gateway/" + label.encode(),
        ).derive(self._secret)


class SubjectLookup:
    """Keyed hash of personal identifiers: equal codes meet in an index, the code is not stored."""

    __slots__ = ("_keyed",)

    def __init__(self, master: MasterKey) -> None:
        # Keyed once; each code hashed on a copy (the key's pads are not derived again).
        self._keyed = hmac.new(master.derive("subject-lookup"), digestmod=sha256)

    def __call__(self, code: str) -> str:
        mac = self._keyed.copy()
        mac.update(code.encode())
        return mac.hexdigest()
