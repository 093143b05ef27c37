"""The exchange's part of `make bench` (issue 12): what bench/run.py needs to measure PushRecords
and SubscribeChanges against bare grpc.aio streams of the same bytes.

The national platform ("bench-national", a certificate of the bench's CA) holds an agreement
naming push, bulk_pull and change_feed over ADM.PERMIT: public credit information, no Art 16
written consent, so the policy releases it on the feed at the agreement's levels. The records
it pushes are signed here, before any clock starts: the provider's ES256 over the record's
canonical bytes (the provider's key is made here; its JWK Set travels with each record), the
origin's over the record's OriginClaim by the platform's certificate key, whose JWK the
registry derived from the certificate (kid = the certificate's x5t#S256).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from credit_gateway.adapters.grpc import client
from credit_gateway.adapters.grpc.v1 import exchange_pb2, exchange_pb2_grpc
from credit_gateway.crypto.signatures import sign_es256
from credit_gateway.devpki import pki
from credit_gateway.domain.agreements import Agreement, Operation, Quotas
from credit_gateway.domain.catalog import DisclosureLevel
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.pushed import OriginClaim
from credit_gateway.domain.records import Submission
from credit_gateway.exchange import agreements as signing

NATIONAL = "bench-national"
NATIONAL_CODE = "914201000000000439"  # a valid USCC, like the bench's other parties'
AGREEMENT = "agr-national"
PURPOSE = "BENCHMARK"
ITEM = "ADM.PERMIT"  # public, not written-consent: the feed releases it
SCOPES = ["exchange.push", "exchange.pull", "exchange.feed"]
PROVIDER = "91420100MA4K0AMR01"  # the providing unit at the origin, as its records name it
PROVIDER_KID = "bench-origin-amr"

PUSH = "/credit_gateway.v1.ExchangeService/PushRecords"
SUBSCRIBE = "/credit_gateway.v1.ExchangeService/SubscribeChanges"
# The bare baselines on bench/server.py's bare-aio server.
COUNT = "/bench.Stream/Count"  # client stream in, its message count out
VERIFY = "/bench.Stream/Verify"  # Count, each pushed record's two signatures verified
SPRAY = "/bench.Stream/Spray"  # "N SIZE" in, N messages of SIZE bytes out


def agreement(now: datetime) -> Agreement:
    return Agreement(
        AGREEMENT,
        NATIONAL,
        frozenset({Operation.PUSH, Operation.BULK_PULL, Operation.CHANGE_FEED}),
        frozenset({ITEM}),
        frozenset(),
        frozenset({PURPOSE}),
        frozenset({DisclosureLevel.OPEN, DisclosureLevel.AUTHORIZED, DisclosureLevel.GOVERNMENT}),
        frozenset(SubjectKind),
        Quotas(10**9, 10**9),
        now - timedelta(days=1),
        now + timedelta(days=2),
    )


def pushed_records(national: pki.IssuedCert, count: int, prefix: str, subject: str) -> list[bytes]:
    """`count` serialized PushedRecords of ITEM about `subject`, as the platform pushes them."""
    origin_key = signing.load_private_key(national.key_path)
    provider_key = ec.generate_private_key(ec.SECP256R1())
    jwk = ECKey.import_key(
        provider_key.public_key(), {"kid": PROVIDER_KID, "alg": "ES256", "use": "sig"}
    ).as_dict(private=False)
    jwks = json.dumps({"keys": [jwk]}).encode()
    occurred = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    out = []
    for i in range(count):
        origin_id = f"{prefix}-{i}"
        payload = {"permit_no": origin_id, "permit_type": "food trading", "authority": "AMR"}
        submission = Submission(PROVIDER, origin_id, ITEM, subject, payload, occurred, None)
        record = client.signed_record(submission, provider_key, PROVIDER_KID)
        claim = OriginClaim(
            origin_id,
            PROVIDER,
            jwks,
            hashlib.sha256(submission.signing_bytes()).hexdigest(),
            record.signature,
        )
        pushed = exchange_pb2.PushedRecord(
            record=record,
            provider_code=PROVIDER,
            provider_jwks=jwks,
            origin_record_id=origin_id,
            origin_signature=sign_es256(origin_key, claim.signing_bytes()),
            origin_key_id=national.x5t_s256,
        )
        out.append(pushed.SerializeToString())
    return out


def subscribe_request(cursor: str) -> bytes:
    return exchange_pb2.SubscribeRequest(
        agreement_id=AGREEMENT, cursor=cursor, purpose=PURPOSE
    ).SerializeToString()


def first_cursor(ch: grpc.Channel, token: str) -> str:
    """The cursor of the feed's head now: the first message of a subscription from nothing."""
    stream: Any = exchange_pb2_grpc.ExchangeServiceStub(ch).SubscribeChanges(
        exchange_pb2.SubscribeRequest.FromString(subscribe_request("")),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=30,
    )
    try:
        return str(next(stream).cursor)
    finally:
        stream.cancel()


def bare_feed_records_per_s(gateway: dict[str, Any], bare: dict[str, Any]) -> float:
    """The bare server stream's bytes/s in the gateway's records: bytes/s divided by what the
    gateway's ChangeBatch messages carried per change."""
    bytes_per_record = gateway["bytes"] / gateway["records"]
    return float(bare["bytes"] / bare["seconds"] / bytes_per_record)
