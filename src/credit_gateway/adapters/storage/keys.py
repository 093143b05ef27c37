"""The gateway's signing keys and data keys, sealed under the master secret in the database so
that every replica signs and decrypts with the same keys."""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.tables import DataKeyRow, SigningKeyRow
from credit_gateway.auth.keyring import KeyRing, KeyState, SigningKey
from credit_gateway.crypto.envelope import Envelope, SealingKey
from credit_gateway.crypto.master import MasterKey
from credit_gateway.domain.ids import new_id


def _aad(kid: str) -> bytes:
    return b"signing-key:" + kid.encode()


def load_keyring(session: Session, master: MasterKey) -> KeyRing:
    keys = []
    for row in session.scalars(
        select(SigningKeyRow).where(SigningKeyRow.state != KeyState.RETIRED.value)
    ):
        der = _open_key(master, row.kid, row.private_key)
        private = serialization.load_der_private_key(der, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        keys.append(SigningKey(row.kid, KeyState(row.state), private))
    return KeyRing(keys)


def live_kids(session: Session) -> frozenset[tuple[str, str]]:
    rows = session.execute(
        select(SigningKeyRow.kid, SigningKeyRow.state).where(
            SigningKeyRow.state != KeyState.RETIRED.value
        )
    )
    return frozenset((kid, state) for kid, state in rows)


def live_kids_of(keyring: KeyRing) -> frozenset[tuple[str, str]]:
    return frozenset((k.kid, k.state.value) for k in keyring.keys)


def rotate_signing_key(session: Session, master: MasterKey, now: datetime) -> str:
    """New current key; the current becomes previous (still verifies), the previous retires."""
    session.execute(
        update(SigningKeyRow)
        .where(SigningKeyRow.state == KeyState.PREVIOUS.value)
        .values(state=KeyState.RETIRED.value)
    )
    session.execute(
        update(SigningKeyRow)
        .where(SigningKeyRow.state == KeyState.CURRENT.value)
        .values(state=KeyState.PREVIOUS.value)
    )
    kid = new_id("es256")
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    session.add(
        SigningKeyRow(
            kid=kid,
            alg="ES256",
            state=KeyState.CURRENT.value,
            private_key=_seal_key(master, kid, der),
            created_at=now,
        )
    )
    return kid


def has_signing_key(session: Session) -> bool:
    return (
        session.scalar(
            select(SigningKeyRow.kid).where(SigningKeyRow.state == KeyState.CURRENT.value)
        )
        is not None
    )


def _sealing(master: MasterKey) -> SealingKey:
    # Signing keys are sealed directly under a key derived for them (no DEK indirection needed).
    return SealingKey.derived(master, "signing-key-sealing")


def _seal_key(master: MasterKey, kid: str, der: bytes) -> bytes:
    return _sealing(master).seal(der, _aad(kid))


def _open_key(master: MasterKey, kid: str, blob: bytes) -> bytes:
    return _sealing(master).open(blob, _aad(kid), what=f"signing key {kid!r}")


def load_envelope(session: Session, master: MasterKey) -> Envelope:
    rows = list(session.scalars(select(DataKeyRow)))
    current = [r.kid for r in rows if r.current]
    return Envelope(master, {r.kid: r.wrapped for r in rows}, current[0] if current else "")


def create_data_key(session: Session, master: MasterKey, now: datetime) -> str:
    kid = new_id("dek")
    wrapped = Envelope.new_data_key(master, kid)
    session.execute(update(DataKeyRow).values(current=False))
    session.add(DataKeyRow(kid=kid, wrapped=wrapped.wrapped, current=True, created_at=now))
    return kid


def has_data_key(session: Session) -> bool:
    return session.scalar(select(DataKeyRow.kid).where(DataKeyRow.current.is_(True))) is not None
