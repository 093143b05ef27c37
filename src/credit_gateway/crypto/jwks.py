"""Public keys out of a JWK Set: the one way the gateway finds a signer's key by its id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.errors import JoseError
from joserfc.jwk import ECKey


def ec_keys(jwks: Mapping[str, Any]) -> dict[str, ec.EllipticCurvePublicKey]:
    """Every EC P-256 key of the set, under its `kid` and under its RFC 7638 thumbprint (so a
    signer may name its key either way). Keys of other types or curves are passed over."""
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for raw in jwks.get("keys", []):
        try:
            jwk = ECKey.import_key(raw)
        except (ValueError, JoseError):  # another key type is a KeyParameterError (a JoseError)
            continue
        public = jwk.get_op_key("verify")
        if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
            for name in {str(raw.get("kid") or ""), str(jwk.thumbprint())} - {""}:
                keys[name] = public
    return keys
