"""The one interceptor: request ids, logging, authentication and scope checks, error mapping.

Every call passes here before any servicer runs. Steps for a method that needs a token:
  1. the method has a rule in auth.scopes.METHOD_SCOPES (none: refused, fail closed);
  2. a bearer token is present and verifies (auth.tokens: signature, iss, aud, time);
  3. its cnf binds it to this connection's client certificate (RFC 8705);
  4. it is not revoked, and its client participant may act now (read per call, not cached);
  5. the principal is of the kind the method serves and holds the method's scope.
The servicer then reads the caller from `current_call()`. Authorization proper (agreements,
consent, the catalog) is the policy's, not this layer's.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import grpc

from credit_gateway import logs
from credit_gateway.api.errors import internal_status, to_status
from credit_gateway.auth.scopes import METHOD_SCOPES, PUBLIC_METHODS, MethodRule, PrincipalKind
from credit_gateway.auth.tokens import Principal
from credit_gateway.domain.participants import Participant
from credit_gateway.errors import GatewayError, PermissionDenied, Unauthenticated
from credit_gateway.gateway import Gateway
from credit_gateway.storage.trust import caller_state

log = logging.getLogger("credit_gateway.calls")
Behaviour = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class CallContext:
    method: str
    request_id: str
    principal: Principal
    client: Participant  # the participant whose certificate carries the call


_current: contextvars.ContextVar[CallContext] = contextvars.ContextVar("call")


def current_call() -> CallContext:
    return _current.get()


class GatewayInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]  # generic only in the stubs
    def __init__(self, gateway: Gateway, rules: Mapping[str, MethodRule] = METHOD_SCOPES) -> None:
        self.gateway = gateway
        self.rules = rules
        self._thumbprints: dict[bytes, str] = {}
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        # Wrapped handlers are built once per method: the wrapper reads each call's metadata
        # from its context, so nothing per call is captured here.
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                wrap = self._wrap_stream if handler.response_streaming else self._wrap_unary
                factory = getattr(grpc, f"{kind}_rpc_method_handler")
                return factory(
                    wrap(method, behaviour),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    # -- wrapping ----------------------------------------------------------------------------
    def _wrap_unary(self, method: str, behaviour: Behaviour) -> Behaviour:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            token = self._enter(context)
            try:
                self._authenticate(method, context)
                return behaviour(request, context)
            except Exception as error:
                self._fail(method, context, error)
            finally:
                logs.request_id.reset(token)
            return None  # not reached: _fail aborts the call

        return call

    def _wrap_stream(self, method: str, behaviour: Behaviour) -> Behaviour:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            token = self._enter(context)
            try:
                self._authenticate(method, context)
                yield from behaviour(request, context)
            except Exception as error:
                self._fail(method, context, error)
            finally:
                logs.request_id.reset(token)

        return call

    def _enter(self, context: grpc.ServicerContext) -> contextvars.Token[str]:
        rid = _metadata(context, "x-request-id")[:64] or secrets.token_hex(8)
        context.set_trailing_metadata((("x-request-id", rid),))
        return logs.request_id.set(rid)

    def _fail(self, method: str, context: grpc.ServicerContext, error: Exception) -> None:
        """Every error becomes a status here, in one place; refusals are logged in full."""
        if isinstance(error, GatewayError):
            fields = {"method": method, "reason": error.reason, "detail": error.message}
            log.info("refused", extra={"fields": fields})
            context.abort_with_status(to_status(error))
        log.error("unhandled error", exc_info=error, extra={"fields": {"method": method}})
        context.abort_with_status(internal_status())

    # -- authentication ----------------------------------------------------------------------
    def _authenticate(self, method: str, context: grpc.ServicerContext) -> None:
        if method in PUBLIC_METHODS:
            return
        rule = self.rules.get(method)
        if rule is None:
            raise PermissionDenied("method is not open to callers", reason="METHOD_NOT_ALLOWED")
        header = _metadata(context, "authorization")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("a bearer access token is required", reason="TOKEN_MISSING")
        now = self.gateway.clock()
        principal = self.gateway.token_verifier.verify(
            token.strip(), self._peer_thumbprint(context), now
        )
        try:
            client = _standing(self.gateway, principal, now)
        except Unauthenticated:
            self.gateway.token_verifier.forget(token)
            raise
        if principal.kind is not rule.principal:
            who = "a credit subject" if rule.principal is PrincipalKind.SUBJECT else "a participant"
            raise PermissionDenied(f"this method is for {who}", reason="WRONG_PRINCIPAL")
        if rule.scope not in principal.scopes:
            raise PermissionDenied(f"token lacks scope {rule.scope}", reason="SCOPE_MISSING")
        _current.set(CallContext(method, logs.request_id.get(), principal, client))

    def _peer_thumbprint(self, context: grpc.ServicerContext) -> str:
        # The stubs type auth_context() values as bytes; gRPC gives a list of bytes per key.
        pems = cast(list[bytes], context.auth_context().get("x509_pem_cert") or [])
        if not pems:
            raise Unauthenticated("no client certificate", reason="NO_CLIENT_CERTIFICATE")
        pem = pems[0]
        thumbprint = self._thumbprints.get(pem)
        if thumbprint is None:
            body = b"".join(
                line for line in pem.strip().splitlines() if not line.startswith(b"-----")
            )
            digest = hashlib.sha256(base64.b64decode(body)).digest()
            thumbprint = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if len(self._thumbprints) > 10_000:
                self._thumbprints.clear()
            self._thumbprints[pem] = thumbprint
        return thumbprint


def _standing(gateway: Gateway, principal: Principal, now: datetime) -> Participant:
    """Read per call, never cached: the token is not revoked and its client may act now."""
    client, revoked = caller_state(gateway.db, principal.client_id, principal.jti)
    if revoked:
        raise Unauthenticated("access token was revoked", reason="TOKEN_REVOKED")
    if client is None:
        raise Unauthenticated("token names an unknown client", reason="TOKEN_INVALID")
    client.ensure_may_act(now)
    return client


def recheck(gateway: Gateway, call: CallContext) -> None:
    """For calls that outlive a moment (server streams): the checks that can change while the
    call runs, again. Raises when the token expired or was revoked, or the client was suspended
    or lost its licence, so the stream ends with that status."""
    now = gateway.clock()
    if now >= call.principal.expires_at + gateway.token_verifier.skew:
        raise Unauthenticated("access token expired", reason="TOKEN_EXPIRED")
    _standing(gateway, call.principal, now)


def _metadata(context: grpc.ServicerContext, key: str) -> str:
    for item in context.invocation_metadata() or ():
        if item[0] == key:
            return str(item[1])
    return ""
