"""Detached ES256 signatures over canonical bytes (records, agreements, consent artefacts).

The signature is the JWS form (RFC 7518 section 3.4): the 64-byte big-endian r||s, not DER, so a
JOSE library can produce it. Verification raises; it never returns a bool (STYLE lesson: make the
insecure thing hard).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from credit_gateway.errors import PeerError

_COORD = 32
_ES256 = ec.ECDSA(hashes.SHA256())  # stateless: one for every signature


def sign_es256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, _ES256))
    return r.to_bytes(_COORD, "big") + s.to_bytes(_COORD, "big")


def verify_es256(
    key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes, *, what: str
) -> None:
    if not isinstance(key.curve, ec.SECP256R1) or len(signature) != 2 * _COORD:
        raise PeerError(f"{what}: signature is not ES256", reason="BAD_SIGNATURE")
    der = encode_dss_signature(
        int.from_bytes(signature[:_COORD], "big"), int.from_bytes(signature[_COORD:], "big")
    )
    try:
        key.verify(der, data, _ES256)
    except InvalidSignature as exc:
        raise PeerError(f"{what}: signature does not verify", reason="BAD_SIGNATURE") from exc
