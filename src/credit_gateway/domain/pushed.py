"""A pushed record's origin signature: what a platform vouches for when it pushes a record it
holds (ExchangeService.PushRecords), and the bytes it signs (docs/canonical.md "Pushed records").

The providing unit at the origin is not registered here, so its signature alone proves nothing
to us: the origin platform, which is registered, signs the record's digest together with the
provider's code, the digest of the provider's public keys and the provider's signature. We
verify the origin's signature under the platform's registered keys, then the provider's
signature under the keys the origin vouched for. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from credit_gateway.domain.canonical import canonical_bytes

FORMAT = "credit-gateway/pushed/v1"


@dataclass(frozen=True, slots=True)
class OriginClaim:
    origin_record_id: str  # the origin's own id for the record: the push's idempotency key
    provider_code: str  # the providing unit at the origin, as its record names it
    provider_jwks: bytes  # the provider's public JWK Set, JSON, as pushed
    record_digest: str  # SHA-256 hex of the provider's canonical record bytes
    provider_signature: bytes

    def signing_bytes(self) -> bytes:
        return canonical_bytes(
            {
                "format": FORMAT,
                "origin_record_id": self.origin_record_id,
                "provider": self.provider_code,
                "provider_jwks_sha256": hashlib.sha256(self.provider_jwks).hexdigest(),
                "record_sha256": self.record_digest,
                "provider_signature": self.provider_signature.hex(),
            }
        )
