"""Text no database stores is the record's own rejection, the same on every database.

Issue #11 item 6: a NUL byte in a record id or a notice failed the whole batch with INTERNAL on
PostgreSQL (which refuses U+0000 in text), losing the good records, while SQLite stored them.
Measured on the three (PostgreSQL 15 UTF8, MariaDB 10.11 utf8mb4, SQLite): U+0000 is the one
character PostgreSQL refuses; MariaDB and SQLite store it; 4-byte characters, noncharacters and
controls other than NUL are stored by all three (protobuf delivers only valid UTF-8, so no lone
surrogate arrives). services/submission.py now refuses U+0000 in the stored texts
(provider_record_id, notice.number) as UNSTORABLE_TEXT naming the field, before anything is
written, and the rest of the batch is stored (89945fe).

MariaDB does alter one thing: its utf8mb4_general_ci collation compares record ids without case,
accents or trailing spaces, and all 4-byte characters as one, so the unique (provider,
provider_record_id) key takes `r-a` for `r-A`. That needs a binary, no-pad collation on the
column (a migration); the last test marks it as expected to fail on MariaDB until then.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from support.harness import PERSON, signed_record
from support.scenario import Consented, stored_record_ids, submit, summary

from credit_gateway.adapters.grpc.v1 import submission_pb2

ACCEPTED = submission_pb2.RecordResult.OUTCOME_ACCEPTED
REJECTED = submission_pb2.RecordResult.OUTCOME_REJECTED


def permit(world: Consented, record_id: str, notice: str = "") -> Any:
    return signed_record(
        world.provider,
        record_id=record_id,
        item="ADM.PERMIT",
        subject=PERSON,
        payload={"permit_no": "P-1", "permit_type": "food", "authority": "AMR"},
        occurred_at=world.h.clock.now - timedelta(days=1),
        notice=notice,
    )


def test_nul_in_a_record_id_or_a_notice_rejects_that_record_only(
    world: Consented, backend: str
) -> None:
    batch = [
        permit(world, "good-1"),
        permit(world, "bad\x00id"),
        permit(world, "bad-notice", notice="N-1\x00"),
        permit(world, "good-2", notice="N-2"),
    ]

    result = submit(world.h, world.provider, batch)

    assert summary(result) == [
        (0, "good-1", ACCEPTED, []),
        (1, "bad\x00id", REJECTED, [("UNSTORABLE_TEXT", "provider_record_id")]),
        (2, "bad-notice", REJECTED, [("UNSTORABLE_TEXT", "notice.number")]),
        (3, "good-2", ACCEPTED, []),
    ]
    assert stored_record_ids(world.h.db) == ["good-1", "good-2", "seed-1"]


def test_characters_every_database_stores_are_stored_as_sent(
    world: Consented, backend: str
) -> None:
    # 4-byte characters (utf8mb4, not utf8mb3), a noncharacter, a control other than NUL.
    ids = ["rec-\U0001f600", "rec-\U0010ffff-\ufffe", "rec-\x01"]

    result = submit(
        world.h, world.provider, [permit(world, i, notice="N-\U00020000-1") for i in ids]
    )

    assert [r.outcome for r in result.results] == [ACCEPTED] * len(ids)
    assert stored_record_ids(world.h.db) == sorted([*ids, "seed-1"])


def test_record_ids_differing_in_case_or_a_trailing_space_are_two_records(
    world: Consented,
) -> None:
    # MariaDB's default collation made these one record until migration 0004 (utf8mb4_nopad_bin).
    ids = ["r-A", "r-a", "r-a ", "r-\u00e1", "r-\U0001f600", "r-\U0001f601"]

    result = submit(world.h, world.provider, [permit(world, i) for i in ids])

    assert [r.outcome for r in result.results] == [ACCEPTED] * len(ids)
    assert stored_record_ids(world.h.db) == sorted([*ids, "seed-1"])
