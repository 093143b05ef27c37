"""AES-256-GCM envelope encryption.

Data is encrypted under a data key (DEK); each DEK is stored wrapped (AES-GCM) under a key
encryption key derived from the master secret, and is named by a key id kept beside every
ciphertext, so DEKs can rotate without re-encrypting old data. The associated data binds a
ciphertext to its place (e.g. a record id), so a ciphertext moved to another row fails to open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from credit_gateway.crypto.master import MasterKey
from credit_gateway.errors import InfrastructureError

NONCE_BYTES = 12
TAG_BYTES = 16
KEK_LABEL = "data-key-wrapping"


class SealingKey:
    """AES-256-GCM under one key, sealed as `nonce || ciphertext || tag` with a fresh random
    nonce: the one sealing format of the gateway (data keys under the KEK, data under a DEK,
    signing keys under their own derived key). The associated data names the sealed thing's
    place, so a blob moved elsewhere does not open."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def derived(cls, master: MasterKey, label: str) -> SealingKey:
        return cls(master.derive(label))

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes, *, what: str) -> bytes:
        refused = f"{what} does not open: tampered, misplaced or sealed under another master key"
        # Too short for a nonce and a tag: refused as such, not left to reach AESGCM as a short
        # nonce (cryptography's ValueError).
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise InfrastructureError(refused)
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise InfrastructureError(refused) from exc


@dataclass(frozen=True, slots=True)
class WrappedKey:
    key_id: str
    wrapped: bytes


class Envelope:
    def __init__(
        self, master: MasterKey, wrapped_keys: Mapping[str, bytes], current_key_id: str
    ) -> None:
        kek = SealingKey.derived(master, KEK_LABEL)
        self._deks = {
            kid: SealingKey(kek.open(blob, kid.encode(), what=f"data key {kid!r}"))
            for kid, blob in wrapped_keys.items()
        }
        if current_key_id not in self._deks:
            raise InfrastructureError(f"current data key {current_key_id!r} is not loaded")
        self.current_key_id = current_key_id

    @staticmethod
    def new_data_key(master: MasterKey, key_id: str) -> WrappedKey:
        kek = SealingKey.derived(master, KEK_LABEL)
        return WrappedKey(key_id, kek.seal(AESGCM.generate_key(256), key_id.encode()))

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        return self.current_key_id, self._deks[self.current_key_id].seal(plaintext, aad)

    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        dek = self._deks.get(key_id)
        if dek is None:
            raise InfrastructureError(f"unknown data key {key_id!r}")
        return dek.open(blob, aad, what="ciphertext")
