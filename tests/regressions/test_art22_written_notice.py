"""Art 22: the written notice is a structured reference, checked, signed and stored.

Issue #11 item 4: `" "`, a tab, `"x"` or a zero-width space passed as the free-text
`notice_reference`. SubmittedRecord.notice is now a WrittenNotice (number, delivered_at), part of
the record's signed bytes (docs/canonical.md, record/v2). An untrustworthiness item without one is
ART22_NOTICE_MISSING; a number that is blank, invisible or too short NOTICE_NUMBER_INVALID; a
delivery later than the submission ART22_NOTICE_LATE. Each is the record's own rejection: the
rest of the batch is stored, the rejected record is not, and the accepted ones keep the number
and the delivery time (records.notice_reference, records.notice_delivered_at). Fixed in
89945fe.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select
from support.harness import COMPANY, PERSON, signed_record
from support.scenario import Consented, punishment_payload, stored_record_ids, submit, summary

from credit_gateway.adapters.grpc.v1 import submission_pb2
from credit_gateway.adapters.storage.tables import RecordRow

ACCEPTED = submission_pb2.RecordResult.OUTCOME_ACCEPTED
REJECTED = submission_pb2.RecordResult.OUTCOME_REJECTED


def punishment(
    world: Consented, record_id: str, notice: str = "", delivered_at: datetime | None = None
) -> Any:
    """An ADM.PUNISHMENT (untrustworthiness information), with the notice given."""
    now = world.h.clock.now
    return signed_record(
        world.provider,
        record_id=record_id,
        item="ADM.PUNISHMENT",
        subject=PERSON,
        payload=punishment_payload(f"D-{record_id}"),
        occurred_at=now - timedelta(days=5),
        notice=notice,
        delivered_at=delivered_at or now - timedelta(days=4),
    )


def refused_alone(world: Consented, record: Any) -> list[tuple[str, str]]:
    """The violations of `record`, submitted before a good record: the good one is stored,
    `record` is not."""
    result = submit(world.h, world.provider, [record, punishment(world, "good", "N-2026-1")])
    (bad, good) = summary(result)
    assert bad[2] == REJECTED, bad
    assert good == (1, "good", ACCEPTED, [])
    assert stored_record_ids(world.h.db) == ["good", "seed-1"]
    return bad[3]


NOT_NUMBERS = {
    "a space": " ",
    "a tab": "\t",
    "x": "x",
    "a zero-width space": "\u200b",
    "a number behind a zero-width space": "\u200bN-1",
    "no digit": "NOTICE",
    "leading space": " N-1",
}


@pytest.mark.parametrize("number", NOT_NUMBERS.values(), ids=NOT_NUMBERS.keys())
def test_a_number_that_is_not_one_is_refused(world: Consented, number: str) -> None:
    record = punishment(world, "bad", number)

    assert refused_alone(world, record) == [("NOTICE_NUMBER_INVALID", "notice.number")]


def test_an_empty_notice_is_refused(world: Consented) -> None:
    record = punishment(world, "bad", "N-1")
    record.notice.number = ""

    assert refused_alone(world, record) == [("NOTICE_NUMBER_INVALID", "notice.number")]


def test_untrustworthiness_information_without_a_notice_is_refused(world: Consented) -> None:
    assert refused_alone(world, punishment(world, "bad")) == [("ART22_NOTICE_MISSING", "notice")]


def test_a_number_longer_than_128_characters_is_refused(world: Consented) -> None:
    record = punishment(world, "bad", "N-" + "7" * 127)

    assert refused_alone(world, record) == [("FIELD_TOO_LONG", "notice.number")]


def test_a_notice_without_its_delivery_time_is_refused(world: Consented) -> None:
    record = punishment(world, "bad", "N-1")
    record.notice.ClearField("delivered_at")

    assert refused_alone(world, record) == [("MISSING_FIELD", "notice.delivered_at")]


def test_a_delivery_time_finer_than_a_microsecond_is_refused(world: Consented) -> None:
    record = punishment(world, "bad", "N-1")
    record.notice.delivered_at.CopyFrom(Timestamp(seconds=1_778_400_000, nanos=1))

    assert refused_alone(world, record) == [("INVALID_TIME", "notice.delivered_at")]


def test_a_notice_delivered_after_the_submission_is_refused(world: Consented) -> None:
    later = world.h.clock.now + timedelta(microseconds=1)
    record = punishment(world, "bad", "N-1", delivered_at=later)

    assert refused_alone(world, record) == [("ART22_NOTICE_LATE", "notice.delivered_at")]


def test_a_notice_on_an_item_that_needs_none_is_checked_too(world: Consented) -> None:
    record = signed_record(
        world.provider,
        record_id="bad",
        item="REG.ENTERPRISE",
        subject=COMPANY,
        payload={"name": "Wuhan Example Co.", "established_on": "2015-03-01"},
        occurred_at=world.h.clock.now - timedelta(days=10),
        notice="\t",
    )

    assert refused_alone(world, record) == [("NOTICE_NUMBER_INVALID", "notice.number")]


def test_the_notice_is_signed(world: Consented) -> None:
    record = punishment(world, "bad", "N-2026-17")
    record.notice.number = "N-2026-18"

    assert refused_alone(world, record) == [("BAD_SIGNATURE", "signature")]


def test_an_accepted_notice_is_stored_as_sent(world: Consented) -> None:
    now = world.h.clock.now
    # Delivered at the very instant of the submission, and before the decision it announces
    # (a prior notice): both are in time.
    records = [
        punishment(world, "at-once", "鄂汉市监罚告\u30142026\u301517号", delivered_at=now),
        punishment(world, "prior", "N 2026/3", delivered_at=now - timedelta(days=9)),
    ]

    result = submit(world.h, world.provider, records)

    assert summary(result) == [(0, "at-once", ACCEPTED, []), (1, "prior", ACCEPTED, [])]
    with world.h.db.transaction(write=False) as session:
        stored = session.execute(
            select(RecordRow.notice_reference, RecordRow.notice_delivered_at)
            .where(RecordRow.provider_record_id.in_(["at-once", "prior"]))
            .order_by(RecordRow.provider_record_id)
        ).all()
    assert [tuple(row) for row in stored] == [
        ("鄂汉市监罚告\u30142026\u301517号", now),
        ("N 2026/3", now - timedelta(days=9)),
    ]
