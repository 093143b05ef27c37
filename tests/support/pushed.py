"""PushedRecords as an origin platform builds them (docs/canonical.md "Pushed records"): the
providing unit's signed record, and the origin's signature over what it vouches for. For the
PushRecords tests and for the outbound delivery's, which push what a gateway holds."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from credit_gateway.adapters.grpc import client
from credit_gateway.adapters.grpc.v1 import exchange_pb2
from credit_gateway.crypto.signatures import sign_es256
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.pushed import OriginClaim
from credit_gateway.domain.records import Submission, WrittenNotice


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    """The public JWK of `key`, named `kid`."""
    return ECKey.import_key(key.public_key(), {"kid": kid, "alg": "ES256", "use": "sig"}).as_dict(
        private=False
    )


def jwks_bytes(*keys: tuple[ec.EllipticCurvePrivateKey, str]) -> bytes:
    """A JWK Set, as JSON bytes, of the public halves of (key, kid) pairs."""
    return json.dumps({"keys": [public_jwk(key, kid) for key, kid in keys]}).encode()


def pushed_record(
    origin_key: ec.EllipticCurvePrivateKey,
    origin_kid: str,
    provider_key: ec.EllipticCurvePrivateKey,
    provider_kid: str,
    provider_code: str,
    provider_jwks: bytes,
    origin_record_id: str,
    item_code: str,
    subject_code: str,
    payload: dict[str, Any],
    occurred_at: datetime,
    *,
    provider_record_id: str | None = None,
    notice: str = "",
    delivered_at: datetime | None = None,
    kind: SubjectKind | None = None,
) -> exchange_pb2.PushedRecord:
    """A PushedRecord: the record signed by `provider_key` (a key of `provider_jwks`, under
    `provider_kid`) as `provider_code`'s, with `provider_record_id` (by default the origin's id);
    and the origin's ES256 signature by `origin_key` (`origin_kid`: a kid of the pushing
    platform's registered JWKS) over its OriginClaim. With a `notice` (not empty), the Art 22
    notice of that number, delivered at `delivered_at` (by default when the record occurred)."""
    written = WrittenNotice(notice, delivered_at or occurred_at) if notice else None
    submission = Submission(
        provider_code,
        origin_record_id if provider_record_id is None else provider_record_id,
        item_code,
        subject_code,
        payload,
        occurred_at,
        written,
        kind,
    )
    record = client.signed_record(submission, provider_key, provider_kid)
    claim = OriginClaim(
        origin_record_id=origin_record_id,
        provider_code=provider_code,
        provider_jwks=provider_jwks,
        record_digest=hashlib.sha256(submission.signing_bytes()).hexdigest(),
        provider_signature=record.signature,
    )
    return exchange_pb2.PushedRecord(
        record=record,
        provider_code=provider_code,
        provider_jwks=provider_jwks,
        origin_record_id=origin_record_id,
        origin_signature=sign_es256(origin_key, claim.signing_bytes()),
        origin_key_id=origin_kid,
    )
