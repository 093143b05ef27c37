"""Bearer tokens and identity numbers in the gateway's logs.

Fixed in dcc024f ("log hygiene"): authlib logs whole token responses at DEBUG (bearer tokens,
and subjects' codes in `sub`), so a gateway run with log_level DEBUG wrote them out. The
authlib logger is now kept at INFO or above whatever the level (runtime/logs.configure). The
second test holds the gateway's own lines to the same rule: each refusal is logged with its
message, and no message may carry a token or a subject's identity number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from support.harness import PERSON
from support.rpc import refusal
from support.scenario import Consented

from credit_gateway.adapters.grpc.v1 import inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.runtime import logs

SECRET = "eyJhbGciOiJFUzI1NiJ9.a-bearer-token.signature"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """logs.configure replaces the root logger's handlers: put pytest's back afterwards."""
    root, authlib = logging.getLogger(), logging.getLogger("authlib")
    handlers, level, authlib_level = root.handlers[:], root.level, authlib.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        authlib.setLevel(authlib_level)


@pytest.mark.usefixtures("restored_logging")
def test_authlib_says_nothing_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("DEBUG")
    token_response = {"access_token": SECRET, "token_type": "Bearer"}
    logging.getLogger("authlib.oauth2.rfc6749.authorization_server").debug(
        "token response %s", token_response
    )
    logging.getLogger("credit_gateway.calls").debug("our own debug line")
    written = capsys.readouterr().err
    assert "our own debug line" in written  # the level is DEBUG ...
    assert SECRET not in written  # ... but not for authlib


def test_refusals_are_logged_without_tokens_or_identity_numbers(
    world: Consented, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    consent_token, access = world.grant(), world.h.token(world.agency)
    wrong_check = PERSON[:-1] + "3"
    own = inquiry_pb2_grpc.InquiryServiceStub(world.portal.channel)
    calls: list[Callable[[], object]] = [
        lambda: world.query(consent_token + "x", access_token=access),
        lambda: world.query(consent_token, access_token=access + "x"),
        lambda: world.query(consent_token, access_token=access, subject=wrong_check),
        lambda: world.query(consent_token, access_token=access, agreement_id="agr-unknown"),
        lambda: own.QueryOwn(
            inquiry_pb2.OwnQueryRequest(item_codes=["not a code"]),
            metadata=world.subject_md(),
            timeout=10,
        ),
    ]
    for call in calls:
        refusal(call)
    lines = [logs.JsonFormatter().format(record) for record in caplog.records]
    assert sum('"msg": "refused"' in line for line in lines) == len(calls)
    for secret in (consent_token, access, PERSON, wrong_check, PERSON[:14]):
        assert not [line for line in lines if secret in line]
