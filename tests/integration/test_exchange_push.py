"""ExchangeService.PushRecords over the real server: a platform pushes records it holds, each
checked as a providing unit's submission is, under the origin's signature and the platform's
push agreement; idempotent by (origin platform, origin record id). Every refusal has its status,
its reason, and leaves the database as it was (a refused call adds its audit entry alone)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from support.audit_entries import stored
from support.configured import configured_harness
from support.databases import rows_but_the_log
from support.harness import (
    COMPANY,
    PERSON,
    Clock,
    Harness,
    Participant,
    make_agreement,
    metadata,
)
from support.pushed import jwks_bytes, pushed_record
from support.rpc import status_of
from support.scenario import punishment_payload, summary

from credit_gateway.adapters.grpc.v1 import exchange_pb2_grpc, submission_pb2
from credit_gateway.adapters.storage import registry
from credit_gateway.adapters.storage.tables import RecordChangeRow, RecordRow
from credit_gateway.crypto.signatures import sign_es256
from credit_gateway.domain.records import Submission, WrittenNotice
from credit_gateway.exchange.agreements import load_private_key

Outcome = submission_pb2.RecordResult
ACCEPTED, DUPLICATE, REJECTED = (
    Outcome.OUTCOME_ACCEPTED,
    Outcome.OUTCOME_DUPLICATE,
    Outcome.OUTCOME_REJECTED,
)
PROVIDER = "91420100MA4K0AMR01"  # the providing unit at the origin, as its records name it
PROVIDER_KID = "amr-2026"
AGREEMENT = "agr-push"
# The items the platform's push agreement covers: registration and punishments, not tax.
CATEGORIES = ("registration", "administrative_punishment")


class Origin:
    """A national platform that pushes what a providing unit of its own signed."""

    def __init__(self, h: Harness, platform: Participant) -> None:
        self.h, self.platform = h, platform
        self.key = load_private_key(platform.cert.key_path)
        self.kid = platform.cert.x5t_s256  # the kid of its registered JWKS
        self.provider_key = ec.generate_private_key(ec.SECP256R1())
        self.jwks = jwks_bytes((self.provider_key, PROVIDER_KID))

    def record(
        self,
        origin_record_id: str,
        item: str,
        subject: str,
        payload: dict[str, Any],
        occurred_at: datetime,
        **options: Any,
    ) -> Any:
        values: dict[str, Any] = {
            "origin_key": self.key,
            "origin_kid": self.kid,
            "provider_key": self.provider_key,
            "provider_kid": PROVIDER_KID,
            "provider_code": PROVIDER,
            "provider_jwks": self.jwks,
        } | options
        return pushed_record(
            origin_record_id=origin_record_id,
            item_code=item,
            subject_code=subject,
            payload=payload,
            occurred_at=occurred_at,
            **values,
        )

    def punishment(self, origin_record_id: str, **payload: Any) -> Any:
        occurred = self.h.clock.now - timedelta(days=5)
        return self.record(
            origin_record_id,
            "ADM.PUNISHMENT",
            PERSON,
            punishment(**payload),
            occurred,
            notice="N-1",
        )

    def enterprise(self, origin_record_id: str, name: str = "Wuhan Example Co.") -> Any:
        occurred = self.h.clock.now - timedelta(days=10)
        payload = {"name": name, "established_on": "2015-03-01"}
        return self.record(origin_record_id, "REG.ENTERPRISE", COMPANY, payload, occurred)

    def push(self, records: Any, timeout: float = 30, token: str | None = None) -> Any:
        stub = exchange_pb2_grpc.ExchangeServiceStub(self.platform.channel)
        token = token or self.h.token(self.platform)
        return stub.PushRecords(iter(records), metadata=metadata(token), timeout=timeout)


def punishment(**extra: Any) -> dict[str, Any]:
    return {**punishment_payload("E-1"), **extra}


@pytest.fixture
def origin(harness: Harness) -> Origin:
    platform = harness.add_participant("cn-national", "national-platform")
    make_agreement(harness, platform, agreement_id=AGREEMENT, operations=("push",),
                   categories=CATEGORIES)  # fmt: skip
    return Origin(harness, platform)


def rows(h: Harness) -> list[RecordRow]:
    with h.db.transaction(write=False) as session:
        found = list(session.scalars(select(RecordRow).order_by(RecordRow.provider_record_id)))
        session.expunge_all()
    return found


def count(h: Harness, table: type[Any]) -> int:
    with h.db.transaction(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def snapshot(h: Harness) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
    """Every table's rows, and the audit entries' bodies (the integrator changes the log's other
    columns and tables on its own time)."""
    with h.db.transaction(write=False) as session:
        tables = rows_but_the_log(session)
    return tables, [entry.body for entry in stored(h.db)]


# --- pushing, and pushing again -------------------------------------------------------------


def test_pushed_records_are_stored_with_their_origin_and_a_push_again_is_all_duplicates(
    origin: Origin,
) -> None:
    h = origin.h
    batch = [origin.punishment("nat-1"), origin.enterprise("nat-2")]

    first = origin.push(batch)

    assert summary(first) == [(0, "nat-1", ACCEPTED, []), (1, "nat-2", ACCEPTED, [])]
    assert (first.accepted, first.duplicates, first.rejected) == (2, 0, 0)
    stored_rows = rows(h)
    assert [r.id for r in stored_rows] == [r.record_id for r in first.results]
    for row, sent in zip(stored_rows, batch, strict=True):
        assert (row.provider_id, row.provider_record_id) == ("cn-national", sent.origin_record_id)
        assert (row.origin_provider_code, row.provider_jwks) == (PROVIDER, origin.jwks.decode())
        assert (row.origin_signature, row.origin_kid) == (sent.origin_signature, origin.kid)
        assert (row.signature, row.signer_kid) == (sent.record.signature, PROVIDER_KID)
        # The provider's own id, which its signature covers: the row alone re-verifies it.
        assert row.origin_provider_record_id == sent.record.provider_record_id
    # The digest is the provider's canonical bytes' (what the origin's claim names).
    occurred = h.clock.now - timedelta(days=5)
    provider_bytes = Submission(
        PROVIDER, "nat-1", "ADM.PUNISHMENT", PERSON, punishment(), occurred,
        WrittenNotice("N-1", occurred),
    ).signing_bytes()  # fmt: skip
    assert stored_rows[0].digest == hashlib.sha256(provider_bytes).hexdigest()
    assert count(h, RecordChangeRow) == 2  # each new record is a change of the feed
    before = snapshot(h)

    again = origin.push(batch)

    assert summary(again) == [(0, "nat-1", DUPLICATE, []), (1, "nat-2", DUPLICATE, [])]
    assert [r.record_id for r in again.results] == [r.record_id for r in first.results]
    assert snapshot(h) == before


def test_other_content_under_an_origin_record_id_already_pushed_is_refused(
    origin: Origin,
) -> None:
    h = origin.h
    origin.push([origin.enterprise("nat-1")])
    before = snapshot(h)

    altered = origin.push([origin.enterprise("nat-1", name="Renamed Co.")])

    assert summary(altered) == [
        (0, "nat-1", REJECTED, [("CONFLICTING_RESUBMISSION", "origin_record_id")])
    ]
    assert snapshot(h) == before


def test_ten_thousand_records_in_one_stream_then_the_same_stream_again(origin: Origin) -> None:
    """The issue's check: exactly 10,000 stored, all acknowledged, the second time all
    duplicates. Signatures are made once, up front; the stream is sent twice."""
    h = origin.h
    occurred = h.clock.now - timedelta(days=1)
    batch = [
        origin.record(
            f"nat-{i:05d}",
            "REG.ENTERPRISE",
            COMPANY,
            {"name": f"Branch {i}", "established_on": "2015-03-01"},
            occurred,
        )
        for i in range(10_000)
    ]

    first = origin.push(batch, timeout=300)
    again = origin.push(batch, timeout=300)

    assert (first.accepted, first.duplicates, first.rejected) == (10_000, 0, 0)
    assert [r.index for r in first.results] == list(range(10_000))
    assert {r.outcome for r in first.results} == {ACCEPTED}
    assert (again.accepted, again.duplicates, again.rejected) == (0, 10_000, 0)
    assert [r.record_id for r in again.results] == [r.record_id for r in first.results]
    assert count(h, RecordRow) == 10_000
    assert count(h, RecordChangeRow) == 10_000


# --- each record's own rejection -------------------------------------------------------------


def test_every_bad_pushed_record_is_rejected_with_its_reason_and_nothing_is_stored(
    origin: Origin,
) -> None:
    h = origin.h
    now = h.clock.now
    stranger = ec.generate_private_key(ec.SECP256R1())

    bad_origin_signature = origin.enterprise("bad-origin-signature")
    bad_origin_signature.origin_signature = bytes(64)
    unknown_origin_kid = origin.enterprise("unknown-origin-kid")
    unknown_origin_kid.origin_key_id = "not-a-kid-of-the-platform"
    # The origin's claim signed by another key, under the platform's kid.
    foreign_origin = origin.record(
        "foreign-origin", "REG.ENTERPRISE", COMPANY,
        {"name": "X Co.", "established_on": "2015-03-01"}, now, origin_key=stranger,
    )  # fmt: skip
    # The provider's record altered after both signed it.
    altered = origin.enterprise("altered-after-signing")
    altered.record.payload_json = b'{"established_on":"2015-03-01","name":"Altered Co."}'
    registration = {"name": "Y Co.", "established_on": "2015-03-01"}

    def enterprise(origin_record_id: str, **options: Any) -> Any:
        return origin.record(
            origin_record_id, "REG.ENTERPRISE", COMPANY, registration, now, **options
        )

    no_notice = origin.record(
        "no-notice", "ADM.PUNISHMENT", PERSON, punishment(), now - timedelta(days=5)
    )
    batch = [
        bad_origin_signature,
        unknown_origin_kid,
        foreign_origin,
        enterprise("jwks-not-json", provider_jwks=b"{not json"),
        enterprise(
            "jwks-private-key",
            provider_jwks=json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "d": "x"}]}).encode(),
        ),
        enterprise("jwks-no-ec-key", provider_jwks=b'{"keys": []}'),
        # Signed by a key that is not in the JWK Set, under a kid of it.
        enterprise("bad-provider-signature", provider_key=stranger),
        enterprise("provider-kid-not-in-jwks", provider_kid="not-in-the-set"),
        altered,
        origin.record(
            "tax-not-agreed", "TAX.PAID", PERSON, {"year": 2025, "amount_cny": 1.0}, now
        ),
        no_notice,
        origin.punishment("schema-violation", fine_cny=-5),
        enterprise(""),
        enterprise("nul\x00in-id"),
        enterprise("provider-code-too-long", provider_code="P" * 65),
        origin.record("bad-subject", "REG.ENTERPRISE", COMPANY[:-1] + "0", registration, now),
    ]  # fmt: skip
    before = snapshot(h)

    result = origin.push(batch)

    assert summary(result) == [
        (0, "bad-origin-signature", REJECTED, [("ORIGIN_SIGNATURE_INVALID", "origin_signature")]),
        (1, "unknown-origin-kid", REJECTED, [("ORIGIN_SIGNATURE_INVALID", "origin_key_id")]),
        (2, "foreign-origin", REJECTED, [("ORIGIN_SIGNATURE_INVALID", "origin_signature")]),
        (3, "jwks-not-json", REJECTED, [("PROVIDER_KEYS_INVALID", "provider_jwks")]),
        (4, "jwks-private-key", REJECTED, [("PROVIDER_KEYS_INVALID", "provider_jwks")]),
        (5, "jwks-no-ec-key", REJECTED, [("PROVIDER_KEYS_INVALID", "provider_jwks")]),
        (6, "bad-provider-signature", REJECTED, [("BAD_SIGNATURE", "record.signature")]),
        (7, "provider-kid-not-in-jwks", REJECTED, [("BAD_SIGNATURE", "record.key_id")]),
        # The origin signed the record's digest: altered, the claim no longer verifies.
        (8, "altered-after-signing", REJECTED, [("ORIGIN_SIGNATURE_INVALID", "origin_signature")]),
        (9, "tax-not-agreed", REJECTED, [("ITEM_NOT_AGREED", "record.item_code")]),
        (10, "no-notice", REJECTED, [("ART22_NOTICE_MISSING", "record.notice")]),
        (11, "schema-violation", REJECTED, [("SCHEMA_VIOLATION", "$.fine_cny")]),
        (12, "", REJECTED, [("MISSING_FIELD", "origin_record_id")]),
        (13, "nul\x00in-id", REJECTED, [("UNSTORABLE_TEXT", "origin_record_id")]),
        (14, "provider-code-too-long", REJECTED, [("MISSING_FIELD", "provider_code")]),
        (15, "bad-subject", REJECTED, [("BAD_IDENTIFIER", "record.subject_code")]),
    ]
    assert (result.accepted, result.duplicates, result.rejected) == (0, 0, 16)
    assert snapshot(h) == before


def test_good_and_bad_records_in_one_stream_store_only_the_good(origin: Origin) -> None:
    h = origin.h
    bad = origin.enterprise("bad")
    bad.origin_signature = bytes(64)

    result = origin.push([origin.enterprise("good-1"), bad, origin.punishment("good-2")])

    assert [(r.provider_record_id, r.outcome) for r in result.results] == [
        ("good-1", ACCEPTED),
        ("bad", REJECTED),
        ("good-2", ACCEPTED),
    ]
    assert [r.provider_record_id for r in rows(h)] == ["good-1", "good-2"]


# --- the call's refusals ---------------------------------------------------------------------


def never_sent() -> tuple[threading.Event, Iterator[Any]]:
    """A request stream that sends nothing until `release` is set: a call refused while it
    waits was refused before the server read a message."""
    release = threading.Event()

    def messages() -> Iterator[Any]:
        release.wait(timeout=30)
        yield from ()

    return release, messages()


def refused_push(origin: Origin) -> tuple[grpc.StatusCode, str]:
    stub = exchange_pb2_grpc.ExchangeServiceStub(origin.platform.channel)
    release, messages = never_sent()
    try:
        with pytest.raises(grpc.RpcError) as refused:
            stub.PushRecords(messages, metadata=metadata(origin.h.token(origin.platform)),
                             timeout=20)  # fmt: skip
    finally:
        release.set()
    return status_of(refused.value)


@pytest.mark.parametrize(
    ("operations", "state", "reason"),
    [
        (None, "", "AGREEMENT_REQUIRED"),
        (("inquiry",), "", "AGREEMENT_REQUIRED"),
        (("push",), "suspended", "AGREEMENT_SUSPENDED"),
        (("push",), "expired", "AGREEMENT_EXPIRED"),
    ],
)
def test_a_platform_without_a_push_agreement_in_force_is_refused_on_record(
    harness: Harness, operations: tuple[str, ...] | None, state: str, reason: str
) -> None:
    h = harness
    platform = h.add_participant("cn-national", "national-platform")
    if operations is not None:
        make_agreement(h, platform, agreement_id=AGREEMENT, operations=operations,
                       categories=CATEGORIES, days=30)  # fmt: skip
    if state == "suspended":
        registry.suspend_agreement(h.db, h.gateway.audit.mac_key, AGREEMENT, h.clock.now)
    if state == "expired":
        h.clock.advance(days=30)
    origin = Origin(h, platform)
    tables, entries = snapshot(h)

    assert refused_push(origin) == (grpc.StatusCode.PERMISSION_DENIED, reason)

    after_tables, after_entries = snapshot(h)
    assert after_tables == tables
    (entry,) = after_entries[len(entries) :]
    assert after_entries[: len(entries)] == entries
    named = AGREEMENT if state else None  # the agreement not in force, if there was one
    assert (entry["caller"], entry["method"], entry["outcome"]) == (
        "cn-national",
        "PushRecords",
        "REFUSED",
    )
    assert (entry["reasons"], entry["agreement"], entry["subject"]) == ([reason], named, None)


def test_an_agreement_suspended_while_the_stream_is_read_stores_nothing(origin: Origin) -> None:
    h = origin.h
    before_entries = snapshot(h)[1]
    first, second = origin.enterprise("nat-1"), origin.enterprise("nat-2")

    def messages() -> Iterator[Any]:
        yield first
        registry.suspend_agreement(h.db, h.gateway.audit.mac_key, AGREEMENT, h.clock.now)
        yield second

    stub = exchange_pb2_grpc.ExchangeServiceStub(origin.platform.channel)
    with pytest.raises(grpc.RpcError) as refused:
        stub.PushRecords(messages(), metadata=metadata(h.token(origin.platform)), timeout=20)

    assert status_of(refused.value) == (grpc.StatusCode.PERMISSION_DENIED, "AGREEMENT_SUSPENDED")
    assert rows(h) == []
    methods = [e["method"] for e in stored(h.db)[len(before_entries) :]]
    assert methods == ["agreements.suspend", "PushRecords"]


@pytest.mark.parametrize("kind", ["providing-unit", "credit-agency"])
def test_a_caller_that_is_not_a_platform_is_refused_by_the_scope_table(
    harness: Harness, kind: str
) -> None:
    h = harness
    caller = h.add_participant(f"{kind}-caller", kind)
    origin = Origin(h, caller)
    before = snapshot(h)

    with pytest.raises(grpc.RpcError) as refused:
        origin.push([origin.enterprise("nat-1")])

    assert status_of(refused.value) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")
    assert snapshot(h) == before


@pytest.fixture
def small_harness(
    tmp_path: Path, certs_dir: Path, database_url: str, clock: Clock
) -> Iterator[Harness]:
    """A gateway that takes at most three records per stream."""
    with configured_harness(tmp_path, certs_dir, database_url, clock, max_stream_messages=3) as h:
        yield h


def test_a_push_stream_longer_than_the_limit_is_refused_and_stores_nothing(
    small_harness: Harness,
) -> None:
    h = small_harness
    platform = h.add_participant("cn-national", "national-platform")
    make_agreement(h, platform, agreement_id=AGREEMENT, operations=("push",),
                   categories=CATEGORIES)  # fmt: skip
    origin = Origin(h, platform)
    before = snapshot(h)

    with pytest.raises(grpc.RpcError) as refused:
        origin.push([origin.enterprise(f"nat-{i}") for i in range(4)])

    assert status_of(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, "STREAM_TOO_LONG")
    assert snapshot(h) == before
    assert origin.push([origin.enterprise(f"nat-{i}") for i in range(3)]).accepted == 3


def test_the_origin_signature_covers_the_provider_signature(origin: Origin) -> None:
    """A provider signature swapped for another valid one (same record, signed again) breaks
    the origin's claim: the origin vouched for that signature, not just for the content."""
    record = origin.enterprise("nat-1")
    occurred = origin.h.clock.now - timedelta(days=10)
    again = Submission(
        PROVIDER, "nat-1", "REG.ENTERPRISE", COMPANY,
        {"name": "Wuhan Example Co.", "established_on": "2015-03-01"}, occurred, None,
    )  # fmt: skip
    record.record.signature = sign_es256(origin.provider_key, again.signing_bytes())

    result = origin.push([record])

    assert summary(result) == [
        (0, "nat-1", REJECTED, [("ORIGIN_SIGNATURE_INVALID", "origin_signature")])
    ]
