"""services/delivery's pure parts: the retry wait (exponential, capped, full jitter), what an
answer makes of each sent entry, and the record rebuilt as its provider signed it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from credit_gateway.adapters.storage import outbox
from credit_gateway.adapters.storage.feed import HeldRecord
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.policy import RecordState
from credit_gateway.domain.records import Submission, WrittenNotice
from credit_gateway.domain.release import StoredRecord
from credit_gateway.services.delivery import (
    Acknowledgement,
    Outcome,
    PeerUnavailable,
    Retrying,
    backoff,
    rebuild,
    settle,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempts", "ceiling_ms"),
    [(1, 500), (2, 1000), (3, 2000), (7, 32_000), (8, 60_000), (9, 60_000), (500, 60_000)],
)
def test_the_wait_doubles_up_to_the_cap(attempts: int, ceiling_ms: int) -> None:
    assert backoff(attempts, 500, 60_000, lambda: 1.0) == timedelta(milliseconds=ceiling_ms)
    assert backoff(attempts, 500, 60_000, lambda: 0.0) == timedelta(0)
    assert backoff(attempts, 500, 60_000, lambda: 0.25) == timedelta(milliseconds=ceiling_ms / 4)


def test_full_jitter_spreads_the_waits_over_the_whole_range() -> None:
    import random

    source = random.Random(7)
    waits = [backoff(4, 100, 10_000, source.random) for _ in range(2000)]
    ceiling = timedelta(milliseconds=800)
    assert all(timedelta(0) <= w <= ceiling for w in waits)
    assert min(waits) < ceiling / 10
    assert max(waits) > ceiling * 9 / 10
    assert len(set(waits)) > 1900  # not a handful of values: entries do not come back together


def test_attempts_count_failures() -> None:
    with pytest.raises(ValueError, match="1 or more"):
        backoff(0, 500, 60_000)


def _entry(n: int, attempts: int = 0) -> outbox.Entry:
    return outbox.Entry(
        f"obx-{n}", "national", f"rec-{n}", 0, outbox.PENDING, attempts, NOW, None, NOW, None
    )


RETRYING = Retrying(max_attempts=3, base_ms=1000, max_ms=8000, rand=lambda: 1.0)


def test_accepted_and_duplicate_are_delivered_rejected_is_dead_at_once() -> None:
    entries = [_entry(0), _entry(1), _entry(2, attempts=1), _entry(3)]
    answer = {
        0: Acknowledgement(Outcome.ACCEPTED),
        1: Acknowledgement(Outcome.DUPLICATE),
        2: Acknowledgement(Outcome.REJECTED, "SCHEMA_VIOLATION at payload_json: bad"),
    }  # 3: not acknowledged
    done = settle(entries, answer, RETRYING, NOW)
    assert done.delivered == ("obx-0", "obx-1")
    assert done.failures == (
        outbox.Failure("obx-2", 2, None, "rejected: SCHEMA_VIOLATION at payload_json: bad"),
        outbox.Failure("obx-3", 1, NOW + timedelta(seconds=1), "not acknowledged by the peer"),
    )


def test_a_failed_call_backs_every_entry_off_and_the_last_attempt_is_dead() -> None:
    entries = [_entry(0), _entry(1, attempts=1), _entry(2, attempts=2)]
    done = settle(entries, PeerUnavailable("PushRecords: UNAVAILABLE: down"), RETRYING, NOW)
    assert done.delivered == ()
    assert done.failures == (
        outbox.Failure("obx-0", 1, NOW + timedelta(seconds=1), "PushRecords: UNAVAILABLE: down"),
        outbox.Failure("obx-1", 2, NOW + timedelta(seconds=2), "PushRecords: UNAVAILABLE: down"),
        outbox.Failure("obx-2", 3, None, "after 3 attempts: PushRecords: UNAVAILABLE: down"),
    )


@pytest.mark.parametrize("said", [SubjectKind.LEGAL_PERSON, None])
def test_the_record_is_rebuilt_with_the_kind_its_provider_signed(said: SubjectKind | None) -> None:
    occurred = NOW - timedelta(days=3)
    notice = WrittenNotice("N-17", occurred)
    payload = b'{"b":1,"a":"x"}'
    signed = Submission(
        "hubei-amr", "r-1", "ADM.PUNISHMENT", "91350100M000100Y43", {"a": "x", "b": 1},
        occurred, notice, said,
    )  # fmt: skip
    digest = hashlib.sha256(signed.signing_bytes()).hexdigest()
    stored = StoredRecord("rec-1", "hubei-amr", "ADM.PUNISHMENT", occurred, None, payload, True)
    held = HeldRecord(
        RecordState("rec-1", "ADM.PUNISHMENT", occurred), "sbj-1", SubjectKind.LEGAL_PERSON,
        stored, "hubei-amr",
    )  # fmt: skip
    provenance = outbox.Provenance("r-1", digest, b"sig", "kid-1", notice)
    record = rebuild(held, provenance, "91350100M000100Y43", payload)
    assert record is not None
    assert record.subject_kind is said
    assert record.payload_json == b'{"a":"x","b":1}'  # canonical, as signed
    assert (record.signature, record.key_id, record.digest) == (b"sig", "kid-1", digest)
    altered = outbox.Provenance("r-1", "0" * 64, b"sig", "kid-1", notice)
    assert rebuild(held, altered, "91350100M000100Y43", payload) is None
