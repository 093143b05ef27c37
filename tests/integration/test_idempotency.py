"""Retries that release once: the `idempotency-key` metadata (issue #11 item 16), over the real
server on every backend.

A consented QueryAuthorized counts a consent use and an agreement call; a retry with its key
within 24 hours gets the recorded answer (same inquiry, same records) and counts nothing, its
audit entry a REPLAYED one naming the inquiry it replays. Every refusal is checked for its
status, its reason and that nothing changed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from support.audit_entries import INQUIRIES, inquiry_count
from support.harness import Harness, metadata
from support.rpc import refusal
from support.scenario import AGREEMENT, Consented, consented, count

from credit_gateway.adapters.grpc.v1 import common_pb2, consent_pb2, inquiry_pb2_grpc
from credit_gateway.adapters.storage.tables import (
    AuditEntryRow,
    ConsentRow,
    IdempotencyRow,
    QuotaUsageRow,
)
from credit_gateway.runtime import tls

KEY = "4f1c2b8e-retry-of-loan-42"


# --- what the database holds ---------------------------------------------------------------------


def counted(world: Consented) -> tuple[int, int, int, int]:
    """Consent uses, agreement calls, audit entries and recorded answers."""
    with world.h.db.transaction(write=False) as session:
        uses = session.scalar(select(func.coalesce(func.sum(ConsentRow.uses), 0)))
        calls = session.scalar(
            select(func.coalesce(func.sum(QuotaUsageRow.calls), 0)).where(
                QuotaUsageRow.agreement_id == AGREEMENT
            )
        )
    db = world.h.db
    return int(uses or 0), int(calls or 0), inquiry_count(db), count(db, IdempotencyRow)


def outcomes(world: Consented) -> list[tuple[str, list[str]]]:
    with world.h.db.transaction(write=False) as session:
        query = select(AuditEntryRow.body).where(INQUIRIES).order_by(AuditEntryRow.seq)
        return [(e["outcome"], e["reasons"]) for e in map(json.loads, session.scalars(query))]


def answer(response: common_pb2.QueryResponse) -> tuple[str, list[tuple[str, bytes]]]:
    return response.inquiry_id, [(r.record_id, r.payload_json) for r in response.records]


def keyed_query(
    world: Consented,
    token: str,
    key: str | None = KEY,
    channel: grpc.Channel | None = None,
    **kw: Any,
) -> common_pb2.QueryResponse:
    """The agency's consented QueryAuthorized, with the key (none: None)."""
    extra = () if key is None else ((("idempotency-key", key),))
    stub = inquiry_pb2_grpc.InquiryServiceStub(channel or world.agency.channel)
    return stub.QueryAuthorized(
        world.request(token, **kw), metadata=(*world.md(), *extra), timeout=10
    )


@pytest.fixture
def token(world: Consented) -> str:
    return world.grant()


@pytest.fixture
def world(harness: Harness) -> Consented:
    return consented(harness)


# --- a retry ------------------------------------------------------------------------------------


def test_a_retry_gets_the_recorded_answer_and_counts_nothing(world: Consented, token: str) -> None:
    first = keyed_query(world, token)
    assert len(first.records) == 1
    assert counted(world) == (1, 1, 1, 1)
    again = keyed_query(world, token)
    assert answer(again) == answer(first)
    assert list(again.conditions) == list(first.conditions)
    assert counted(world) == (1, 1, 2, 1)  # one more audit entry, nothing counted
    assert outcomes(world) == [("RELEASED", []), ("REPLAYED", [first.inquiry_id])]
    # The subject sees the replay under its consent too.
    consent_id = first.consent_id
    assert [o for _, o, _ in world.inquiries(consent_id)] == ["REPLAYED", "RELEASED"]


def test_without_a_key_each_call_is_released_and_counted(world: Consented, token: str) -> None:
    first, second = keyed_query(world, token, None), keyed_query(world, token, None)
    assert first.inquiry_id != second.inquiry_id
    assert counted(world) == (2, 2, 2, 0)


def test_a_key_is_the_callers_own(world: Consented, token: str) -> None:
    first = keyed_query(world, token)
    other = world.other_agency("hx-credit")
    theirs = world.granted(grantee=other.id).token.token
    stub = inquiry_pb2_grpc.InquiryServiceStub(other.channel)
    md = (*metadata(world.h.token(other)), ("idempotency-key", KEY))
    request = world.request(theirs, agreement_id=f"agr-{other.id}")
    answered = stub.QueryAuthorized(request, metadata=md, timeout=10)
    assert answered.inquiry_id != first.inquiry_id
    assert answered.consent_id != first.consent_id
    assert count(world.h.db, IdempotencyRow) == 2


def test_a_key_is_scoped_to_its_method(world: Consented, token: str) -> None:
    keyed_query(world, token)
    stub = inquiry_pb2_grpc.InquiryServiceStub(world.agency.channel)
    md = (*world.md(), ("idempotency-key", KEY))
    before = counted(world)
    # QueryOpen of a person's punishment is refused: decided afresh, not answered from the record.
    assert refusal(lambda: stub.QueryOpen(world.request(token).query, metadata=md, timeout=10)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "NOT_DISCLOSABLE_ON_CHANNEL",
    )
    uses, _calls, entries, recorded = counted(world)
    assert (uses, entries, recorded) == (before[0], before[2] + 1, before[3])


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    # (A control character or non-ASCII text never leaves a gRPC client as metadata: the check of
    # those is unit-tested, tests/unit/domain/test_idempotency.py.)
    ["", "k" * 129, " leading-space", "trailing-space "],
    ids=["empty", "129-characters", "leading-space", "trailing-space"],
)
def test_a_malformed_key_is_refused_and_changes_nothing(
    world: Consented, token: str, key: str
) -> None:
    before = counted(world)
    assert refusal(lambda: keyed_query(world, token, key)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "IDEMPOTENCY_KEY_INVALID",
    )
    assert counted(world) == before


def test_two_keys_on_one_call_are_refused(world: Consented, token: str) -> None:
    stub = inquiry_pb2_grpc.InquiryServiceStub(world.agency.channel)
    md = (*world.md(), ("idempotency-key", "a"), ("idempotency-key", "b"))
    assert refusal(lambda: stub.QueryAuthorized(world.request(token), metadata=md, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "IDEMPOTENCY_KEY_INVALID",
    )
    assert counted(world) == (0, 0, 0, 0)


def test_the_longest_key_is_taken(world: Consented, token: str) -> None:
    key = "~" * 128
    assert keyed_query(world, token, key).inquiry_id == keyed_query(world, token, key).inquiry_id


def test_one_key_for_another_request_is_refused_and_changes_nothing(
    world: Consented, token: str
) -> None:
    keyed_query(world, token)
    before = counted(world)
    other_token = world.grant()
    others: dict[str, Any] = {
        "another consent token": {"consent_token": other_token},
        "another subject": {"subject": "420106198501011233"},
        "another agreement": {"agreement_id": "agr-other"},
    }
    for case, changes in others.items():
        consent_token = changes.pop("consent_token", token)
        assert refusal(lambda: keyed_query(world, consent_token, **changes)) == (  # noqa: B023
            grpc.StatusCode.FAILED_PRECONDITION,
            "IDEMPOTENCY_KEY_REUSED",
        ), case
    changed = world.request(token)
    changed.query.purpose = "LOAN_APPROVAL"
    stub = inquiry_pb2_grpc.InquiryServiceStub(world.agency.channel)
    md = (*world.md(), ("idempotency-key", KEY))
    assert refusal(lambda: stub.QueryAuthorized(changed, metadata=md, timeout=10)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert counted(world) == before


def test_a_refusal_is_not_recorded_and_its_retry_is_decided_afresh(
    world: Consented,
) -> None:
    granted = world.granted()
    token, consent_id = granted.token.token, granted.consent.consent_id
    ref = consent_pb2.ConsentRef(consent_id=consent_id)
    world.consents.PauseConsent(ref, metadata=world.subject_md(), timeout=10)
    assert refusal(lambda: keyed_query(world, token)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_PAUSED",
    )
    assert counted(world) == (0, 0, 1, 0)
    world.consents.ResumeConsent(ref, metadata=world.subject_md(), timeout=10)
    assert len(keyed_query(world, token).records) == 1
    assert counted(world) == (1, 1, 2, 1)


def test_the_recorded_answer_is_sealed(world: Consented, token: str) -> None:
    first = keyed_query(world, token)
    with world.h.db.transaction(write=False) as session:
        (row,) = session.scalars(select(IdempotencyRow))
    assert (row.caller, row.method, row.idem_key) == (world.agency.id, "QueryAuthorized", KEY)
    assert row.inquiry_id == first.inquiry_id
    assert first.records[0].payload_json not in row.answer
    assert b"unlicensed trading" not in row.answer


def test_a_key_older_than_24_hours_is_not_honoured(world: Consented, token: str) -> None:
    first = keyed_query(world, token)
    world.h.clock.advance(hours=23, minutes=59)
    assert keyed_query(world, token).inquiry_id == first.inquiry_id
    world.h.clock.advance(minutes=1)  # 24 hours after the release
    fresh = keyed_query(world, token)
    assert fresh.inquiry_id != first.inquiry_id
    assert counted(world)[:2] == (2, 2)
    assert keyed_query(world, token).inquiry_id == fresh.inquiry_id  # the key is recorded anew
    assert count(world.h.db, IdempotencyRow) == 1


# --- racing and dropped calls -------------------------------------------------------------------


def test_concurrent_calls_with_one_key_release_once(world: Consented, token: str) -> None:
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: answer(keyed_query(world, token)), range(8)))
    assert len(set(map(repr, answers))) == 1
    assert counted(world) == (1, 1, 8, 1)
    assert sorted(o for o, _ in outcomes(world)) == ["RELEASED"] + ["REPLAYED"] * 7


class DroppingProxy:
    """A TCP relay in front of the gateway (TLS passes through it untouched). Once `hold()` is
    called it stops passing the gateway's bytes to the client; `drop()` then closes both sides,
    so a call sent meanwhile reaches the gateway and is answered, and the answer is lost."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._upstream))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_gateway: bool) -> None:
        try:
            while data := source.recv(65536):
                if not (from_gateway and self._held.is_set()):
                    sink.sendall(data)
        except OSError:
            return

    def hold(self) -> None:
        self._held.set()

    def drop(self) -> None:
        for s in (*self._sockets, self._listener):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture
def proxy(world: Consented) -> Iterator[DroppingProxy]:
    relay = DroppingProxy(world.h.running.port)
    yield relay
    relay.drop()


def test_a_retry_after_the_connection_dropped_gets_the_committed_answer(
    world: Consented, token: str, proxy: DroppingProxy
) -> None:
    h = world.h
    credentials = tls.grpc_channel_credentials(
        h.settings.ca_cert, world.agency.cert.cert_path, world.agency.cert.key_path
    )
    with grpc.secure_channel(f"localhost:{proxy.port}", credentials) as through:
        # The connection is up (TLS, HTTP/2 settings) before the gateway's bytes are held.
        assert refusal(lambda: keyed_query(world, token, None, through, subject="")) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        )
        proxy.hold()
        lost = inquiry_pb2_grpc.InquiryServiceStub(through).QueryAuthorized.future(
            world.request(token), metadata=(*world.md(), ("idempotency-key", KEY)), timeout=20
        )
        wait_for_record(world)  # the release committed; its answer is held in the proxy
        proxy.drop()
        with pytest.raises(grpc.RpcError) as caught:
            lost.result()
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert counted(world)[:2] == (1, 1)
    with h.db.transaction(write=False) as session:
        recorded = session.scalar(select(IdempotencyRow.inquiry_id))
    retried = keyed_query(world, token)  # a new connection, the same key
    assert retried.inquiry_id == recorded
    assert [r.item_code for r in retried.records] == ["ADM.PUNISHMENT"]
    assert counted(world) == (1, 1, 2, 1)
    assert outcomes(world) == [("RELEASED", []), ("REPLAYED", [recorded])]


def wait_for_record(world: Consented) -> None:
    deadline = time.monotonic() + 10
    while count(world.h.db, IdempotencyRow) == 0:
        assert time.monotonic() < deadline, "the release never committed"
        time.sleep(0.01)
