"""The client side of delivery: a peer platform's ExchangeService.PushRecords, over mutual TLS
with the client certificate the peer issued us, under an access token from the peer's token
endpoint (client credentials, authenticated by private_key_jwt: an RFC 7523 section 2.2 client
assertion signed with our client key, over the same mutual TLS, since the peer binds the token
to the certificate: RFC 8705).

Everything here runs on the event loop and waits on the network only: the token request is
aiohttp's, the call grpc.aio's; each is bounded by peer_timeout_seconds. Every failure of the
call as a whole leaves as services.delivery.PeerUnavailable, with what went wrong.
"""

from __future__ import annotations

import json
import secrets
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import grpc
from joserfc import jwt
from joserfc.jwk import ECKey

from credit_gateway.adapters.grpc.convert import subject_kind_to_pb, to_timestamp
from credit_gateway.adapters.grpc.v1 import exchange_pb2, exchange_pb2_grpc, submission_pb2
from credit_gateway.adapters.storage.peers import PeerCredentials
from credit_gateway.auth.scopes import EXCHANGE_PUSH
from credit_gateway.runtime import tls
from credit_gateway.services.delivery import (
    Acknowledgement,
    Outcome,
    PeerUnavailable,
    Shipment,
    client_key_id,
)

Clock = Callable[[], datetime]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = timedelta(seconds=60)
TOKEN_MARGIN = timedelta(seconds=30)  # a token this close to its expiry is not used
MAX_TOKEN_ANSWER = 64 * 1024
_OUTCOMES = {
    submission_pb2.RecordResult.OUTCOME_ACCEPTED: Outcome.ACCEPTED,
    submission_pb2.RecordResult.OUTCOME_DUPLICATE: Outcome.DUPLICATE,
    submission_pb2.RecordResult.OUTCOME_REJECTED: Outcome.REJECTED,
}


def pushed_record(shipment: Shipment) -> exchange_pb2.PushedRecord:
    record = shipment.record
    notice = record.notice
    return exchange_pb2.PushedRecord(
        record=submission_pb2.SubmittedRecord(
            provider_record_id=record.provider_record_id,
            item_code=record.item_code,
            subject_code=record.subject_code,
            subject_kind=subject_kind_to_pb(record.subject_kind),
            payload_json=record.payload_json,
            occurred_at=to_timestamp(record.occurred_at),
            notice=None
            if notice is None
            else submission_pb2.WrittenNotice(
                number=notice.number, delivered_at=to_timestamp(notice.delivered_at)
            ),
            signature=record.signature,
            key_id=record.key_id,
        ),
        provider_code=shipment.provider_code,
        provider_jwks=shipment.provider_jwks,
        origin_record_id=shipment.origin_record_id,
        origin_signature=shipment.origin_signature,
        origin_key_id=shipment.origin_key_id,
    )


def acknowledgements(result: submission_pb2.SubmissionResult) -> dict[int, Acknowledgement]:
    """Each record's result, by its position in the stream."""
    found = {}
    for r in result.results:
        outcome = _OUTCOMES.get(r.outcome)
        if outcome is None:
            continue  # an outcome we do not know: not acknowledged, so tried again
        error = "; ".join(f"{v.reason} at {v.field or '-'}: {v.description}" for v in r.violations)
        found[int(r.index)] = Acknowledgement(outcome, error)
    return found


class PeerClient:
    """One peer's client: its channel, its HTTPS session and its current token, made on the
    event loop at first use and kept until `close`."""

    def __init__(self, credentials: PeerCredentials, timeout: float, clock: Clock) -> None:
        self.credentials, self.timeout, self.clock = credentials, timeout, clock
        peer = credentials.peer
        self.key = ECKey.import_key(credentials.key_pem)
        self.key_id = client_key_id(peer.cert_pem)
        self._tls = tls.peer_client_context(peer.ca_pem, peer.cert_pem, credentials.key_pem)
        self._credentials = grpc.ssl_channel_credentials(
            root_certificates=peer.ca_pem,
            private_key=credentials.key_pem,
            certificate_chain=peer.cert_pem,
        )
        self._channel: grpc.aio.Channel | None = None
        self._http: aiohttp.ClientSession | None = None
        self._token: tuple[str, datetime] | None = None

    async def push(self, shipments: Sequence[Shipment]) -> Mapping[int, Acknowledgement]:
        token = await self._current_token()
        if self._channel is None:
            self._channel = grpc.aio.secure_channel(
                self.credentials.peer.grpc_address, self._credentials
            )
        stub = exchange_pb2_grpc.ExchangeServiceStub(self._channel)  # type: ignore[no-untyped-call]
        try:
            result = await stub.PushRecords(
                iter([pushed_record(s) for s in shipments]),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.UNAUTHENTICATED:
                self._token = None  # revoked or expired early: a new one next time
            raise PeerUnavailable(f"PushRecords: {error.code().name}: {error.details()}") from None
        return acknowledgements(result)

    async def _current_token(self) -> str:
        now = self.clock()
        if self._token is not None and now < self._token[1] - TOKEN_MARGIN:
            return self._token[0]
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "credit-gateway"},
            )
        peer = self.credentials.peer
        form = {
            "grant_type": "client_credentials",
            "client_id": peer.client_id,
            "scope": EXCHANGE_PUSH,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self._assertion(now),
        }
        try:
            async with self._http.post(
                peer.token_url, data=form, ssl=self._tls, allow_redirects=False
            ) as response:
                body = await response.content.read(MAX_TOKEN_ANSWER)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as error:
            raise PeerUnavailable(f"token endpoint: {type(error).__name__}: {error}") from None
        answer = _json(body)
        token = answer.get("access_token") if status == 200 else None
        if not isinstance(token, str):
            said = answer.get("error_description") or answer.get("error") or body[:200]
            raise PeerUnavailable(f"token endpoint answered {status}: {said!s}")
        lifetime = answer.get("expires_in")
        seconds = lifetime if isinstance(lifetime, int) and lifetime > 0 else 60
        self._token = (token, now + timedelta(seconds=seconds))
        return token

    def _assertion(self, now: datetime) -> str:
        """RFC 7523 section 3: we are issuer and subject, the token endpoint the audience."""
        peer = self.credentials.peer
        issued = int(now.timestamp())
        claims = {
            "iss": peer.client_id,
            "sub": peer.client_id,
            "aud": peer.token_url,
            "jti": secrets.token_urlsafe(16),
            "iat": issued,
            "exp": issued + int(ASSERTION_LIFETIME.total_seconds()),
        }
        header = {"alg": "ES256", "kid": self.key_id}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"])

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None
        if self._http is not None:
            await self._http.close()
            self._http = None


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
