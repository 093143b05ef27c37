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


@dataclass(frozen=True, slots=True)
class WrappedKey:
    key_id: str
    wrapped: bytes


class Envelope:
    def __init__(
        self, master: MasterKey, wrapped_keys: Mapping[str, bytes], current_key_id: str
    ) -> None:
        self._kek = AESGCM(master.derive("data-key-wrapping"))
        self._deks = {kid: AESGCM(self._unwrap(kid, blob)) for kid, blob in wrapped_keys.items()}
        if current_key_id not in self._deks:
            raise InfrastructureError(f"current data key {current_key_id!r} is not loaded")
        self.current_key_id = current_key_id

    @staticmethod
    def new_data_key(master: MasterKey, key_id: str) -> WrappedKey:
        kek = AESGCM(master.derive("data-key-wrapping"))
        nonce = os.urandom(NONCE_BYTES)
        return WrappedKey(
            key_id, nonce + kek.encrypt(nonce, AESGCM.generate_key(256), key_id.encode())
        )

    def _unwrap(self, key_id: str, blob: bytes) -> bytes:
        try:
            return self._kek.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], key_id.encode())
        except InvalidTag as exc:
            raise InfrastructureError(
                f"data key {key_id!r} does not open under this master key"
            ) from exc

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        dek = self._deks[self.current_key_id]
        return self.current_key_id, nonce + dek.encrypt(nonce, plaintext, aad)

    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        dek = self._deks.get(key_id)
        if dek is None:
            raise InfrastructureError(f"unknown data key {key_id!r}")
        try:
            return dek.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise InfrastructureError("ciphertext does not open: tampered or misplaced") from exc
