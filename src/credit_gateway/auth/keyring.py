"""The gateway's own signing keys (ES256): the current one signs, the previous one still
verifies until the tokens it signed have expired (`credit-gateway keys rotate`)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, KeySet

from credit_gateway.errors import InfrastructureError


class KeyState(enum.Enum):
    CURRENT = "current"
    PREVIOUS = "previous"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    state: KeyState
    private_key: ec.EllipticCurvePrivateKey

    def jwk(self) -> ECKey:
        return ECKey.import_key(self.private_key, {"kid": self.kid, "alg": "ES256", "use": "sig"})


class KeyRing:
    def __init__(self, keys: Iterable[SigningKey]) -> None:
        live = [k for k in keys if k.state is not KeyState.RETIRED]
        self.keys: tuple[SigningKey, ...] = tuple(live)
        current = [k for k in live if k.state is KeyState.CURRENT]
        if len(current) != 1:
            raise InfrastructureError(
                "exactly one current signing key is required (run `credit-gateway init`)"
            )
        self.current = current[0]
        self._jwks = {k.kid: k.jwk() for k in live}
        self.verification_keys = KeySet(list(self._jwks.values()))

    @property
    def current_jwk(self) -> ECKey:
        return self._jwks[self.current.kid]

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self._jwks.values()]}

    def knows(self, kid: str) -> bool:
        return kid in self._jwks
