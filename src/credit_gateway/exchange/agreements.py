"""Signing, verifying and registering agreements (Art 20, 32-33).

Registration verifies, in order: the document parses; the center's signature verifies with the
operator key; the counterparty is a registered participant and its signature verifies with a key
of its registered JWKS; the agreement has not expired. One that starts later may be registered
ahead of time: the policy refuses calls under it until it is in force (AGREEMENT_NOT_YET_VALID).
"""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from credit_gateway.crypto.jwks import ec_keys
from credit_gateway.crypto.signatures import sign_es256, verify_es256
from credit_gateway.domain.agreements import CENTER, Agreement, AgreementSignature
from credit_gateway.errors import (
    ConfigError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PeerError,
)

ALG = "ES256"


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load private key {path}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} is not an EC key")
    return key


def key_id(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """Signers name keys by RFC 7638 JWK thumbprints, so any JOSE tool computes the same id."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return str(ECKey.import_key(public).thumbprint())


def create_operator_key(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def draft(agreement: Agreement) -> dict[str, Any]:
    return {"agreement": _in_utc(agreement).to_document(), "signatures": []}


def sign(
    document: dict[str, Any], signer: str, key: ec.EllipticCurvePrivateKey, kid: str | None = None
) -> dict[str, Any]:
    agreement = Agreement.from_document(document["agreement"])
    signature = AgreementSignature(
        signer, kid or key_id(key), ALG, sign_es256(key, agreement.signing_bytes())
    )
    others = [s for s in document.get("signatures", []) if s.get("signer") != signer]
    return {"agreement": agreement.to_document(), "signatures": [*others, signature.to_document()]}


def _in_utc(agreement: Agreement) -> Agreement:
    """The times as UTC instants, so a draft (what both sides then sign) says `...Z`, never the
    offset its author typed (`--valid-from ...+08:00`): docs/canonical.md. `sign` and `verify`
    keep a document's own times, so signatures already on it stay valid."""
    return dataclasses.replace(
        agreement,
        valid_from=agreement.valid_from.astimezone(UTC),
        valid_until=agreement.valid_until.astimezone(UTC),
    )


def verify(
    document: dict[str, Any],
    center_key: ec.EllipticCurvePublicKey,
    counterparty_jwks: dict[str, Any] | None,
    now: datetime,
) -> Agreement:
    try:
        agreement = Agreement.from_document(document["agreement"])
        signatures = [AgreementSignature.from_document(s) for s in document["signatures"]]
    except (KeyError, TypeError) as exc:
        raise InvalidArgument(
            "agreement document lacks 'agreement' or 'signatures'", reason="AGREEMENT_MALFORMED"
        ) from exc
    # What was signed is the canonical form; a document whose terms were edited no longer matches.
    data = agreement.signing_bytes()
    by_signer = {s.signer: s for s in signatures}
    center = by_signer.get(CENTER)
    if center is None:
        raise PeerError("agreement lacks the center's signature", reason="AGREEMENT_UNSIGNED")
    if center.alg != ALG or center.kid != key_id(center_key):
        raise PeerError("center signature is by an unknown key", reason="AGREEMENT_BAD_SIGNATURE")
    _verify(center_key, data, center.value)
    if counterparty_jwks is None:
        raise NotFound(
            f"counterparty {agreement.counterparty} is not a registered participant",
            reason="PARTICIPANT_NOT_FOUND",
        )
    theirs = by_signer.get(agreement.counterparty)
    if theirs is None:
        raise PeerError("agreement lacks the counterparty's signature", reason="AGREEMENT_UNSIGNED")
    public = _counterparty_key(counterparty_jwks, theirs.kid)
    _verify(public, data, theirs.value)
    if now >= agreement.valid_until:
        raise FailedPrecondition("agreement has expired", reason="AGREEMENT_EXPIRED")
    return agreement


def _verify(key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> None:
    try:
        verify_es256(key, data, signature, what="agreement")
    except PeerError as exc:
        raise PeerError(
            "agreement signature does not verify: tampered or wrong key",
            reason="AGREEMENT_BAD_SIGNATURE",
        ) from exc


def _counterparty_key(jwks: dict[str, Any], kid: str) -> ec.EllipticCurvePublicKey:
    key = ec_keys(jwks).get(kid)
    if key is None:
        raise PeerError(
            "counterparty signed with a key it has not registered", reason="AGREEMENT_BAD_SIGNATURE"
        )
    return key
