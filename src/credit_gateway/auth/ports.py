"""What the authorization server needs from the rest of the gateway; storage implements it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from credit_gateway.domain.participants import Participant


@dataclass(frozen=True, slots=True)
class Client:
    """A registered participant as an OAuth client (RFC 7591 metadata, the parts we use)."""

    participant: Participant
    jwks: dict[str, Any]  # public keys for private_key_jwt and the participant's signatures
    certificate_thumbprints: frozenset[str]  # x5t#S256 of every registered certificate

    @property
    def client_id(self) -> str:
        return self.participant.id


class TrustStore(Protocol):
    def client(self, client_id: str) -> Client | None: ...

    def consume_assertion(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """Record a client assertion's jti; False if it was seen before (a replay)."""
        ...

    def revoke_token(self, jti: str, expires_at: datetime) -> None: ...

    def is_revoked(self, jti: str) -> bool: ...
