"""SubmissionService.SubmitRecords over the real server (Art 11, 14-16, 22).

Every record gets its own result; rejected records change nothing; a provider's own record id
makes resubmission idempotent; non-open payloads and subject codes are never stored in clear.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from support.audit_entries import inquiry_count
from support.databases import empty
from support.harness import (
    COMPANY,
    PERSON,
    Clock,
    Harness,
    Participant,
    make_agreement,
    metadata,
    signed_record,
    start_harness,
)
from support.rpc import reason_of
from support.scenario import submit, summary

from credit_gateway.adapters.grpc.v1 import (
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2,
    submission_pb2_grpc,
)
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage.db import make_engine
from credit_gateway.adapters.storage.tables import Base, RecordRow, SubjectRow
from credit_gateway.crypto.signatures import sign_es256
from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.records import Submission, WrittenNotice

Outcome = submission_pb2.RecordResult
ACCEPTED, DUPLICATE, REJECTED = (
    Outcome.OUTCOME_ACCEPTED,
    Outcome.OUTCOME_DUPLICATE,
    Outcome.OUTCOME_REJECTED,
)


# --- helpers -----------------------------------------------------------------------------------


def stored_rows(h: Harness) -> list[RecordRow]:
    with h.db.transaction(write=False) as session:
        rows = list(session.scalars(select(RecordRow).order_by(RecordRow.provider_record_id)))
        session.expunge_all()
    return rows


def stored_ids(h: Harness) -> list[str]:
    return [r.provider_record_id for r in stored_rows(h)]


def punishment(decision_no: str = "E-1", **extra: Any) -> dict[str, Any]:
    return {
        "decision_no": decision_no,
        "violation": "unlicensed trading",
        "penalty": "fine",
        "decided_on": "2026-01-02",
        "authority": "Wuhan AMR",
        **extra,
    }


def amr_punishment(
    amr: Participant, now: datetime, record_id: str, payload: dict[str, Any] | None = None
) -> Any:
    return signed_record(
        amr,
        record_id=record_id,
        item="ADM.PUNISHMENT",
        subject=PERSON,
        payload=payload or punishment(),
        occurred_at=now - timedelta(days=5),
        notice="N-1",
    )


def enterprise(amr: Participant, now: datetime, record_id: str) -> Any:
    return signed_record(
        amr,
        record_id=record_id,
        item="REG.ENTERPRISE",
        subject=COMPANY,
        payload={"name": "Wuhan Example Co.", "established_on": "2015-03-01"},
        occurred_at=now - timedelta(days=10),
    )


# --- per-record checks -------------------------------------------------------------------------


def test_mixed_batch_gets_a_result_per_record_and_stores_only_the_good_ones(
    harness: Harness,
) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    now = h.clock.now

    # Signed by a key that is not the provider's, under the provider's key id.
    forged = amr_punishment(amr, now, "bad-foreign-key")
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged.signature = sign_es256(
        stranger,
        Submission(
            "hubei-amr",
            "bad-foreign-key",
            "ADM.PUNISHMENT",
            PERSON,
            punishment(),
            now - timedelta(days=5),
            WrittenNotice("N-1", now - timedelta(days=5)),
        ).signing_bytes(),
    )
    # Signed properly, then the payload altered in transit.
    altered = amr_punishment(amr, now, "bad-altered")
    altered.payload_json = canonical_bytes(punishment(fine_cny=1))

    not_json = amr_punishment(amr, now, "bad-not-json")
    not_json.payload_json = b"{not json"

    batch = [
        amr_punishment(amr, now, "good-1"),
        signed_record(
            amr,
            record_id="bad-not-in-catalog",
            item="ADM.UNKNOWN",
            subject=PERSON,
            payload={"x": 1},
            occurred_at=now,
        ),
        signed_record(
            amr,
            record_id="bad-not-authorised",
            item="TAX.PAID",  # only hubei-tax provides it
            subject=PERSON,
            payload={"year": 2025, "amount_cny": 1.0},
            occurred_at=now,
        ),
        amr_punishment(amr, now, "bad-schema-value", punishment(fine_cny=-5)),
        signed_record(
            amr,
            record_id="bad-identifier",
            item="ADM.PUNISHMENT",
            subject=PERSON[:-1] + "3",  # wrong GB 11643 check character
            payload=punishment(),
            occurred_at=now,
            notice="N-1",
        ),
        forged,
        altered,
        enterprise(amr, now, "good-2"),
        # Art 16 comes first: the schema (additionalProperties: false) would refuse it too.
        amr_punishment(amr, now, "bad-art16", punishment(blood_type="AB")),
        signed_record(
            amr,
            record_id="bad-no-notice",
            item="ADM.PUNISHMENT",
            subject=PERSON,
            payload=punishment(),
            occurred_at=now,
        ),
        not_json,
        signed_record(
            amr,
            record_id="bad-future",
            item="REG.ENTERPRISE",
            subject=COMPANY,
            payload={"name": "Later Co.", "established_on": "2030-01-01"},
            occurred_at=now + timedelta(days=1),
        ),
        amr_punishment(amr, now, "good-3", punishment("E-3")),
    ]

    result = submit(h, amr, batch)

    assert summary(result) == [
        (0, "good-1", ACCEPTED, []),
        (1, "bad-not-in-catalog", REJECTED, [("NOT_IN_CATALOG", "item_code")]),
        (2, "bad-not-authorised", REJECTED, [("PROVIDER_NOT_AUTHORISED", "item_code")]),
        (3, "bad-schema-value", REJECTED, [("SCHEMA_VIOLATION", "$.fine_cny")]),
        (4, "bad-identifier", REJECTED, [("BAD_IDENTIFIER", "subject_code")]),
        (5, "bad-foreign-key", REJECTED, [("BAD_SIGNATURE", "signature")]),
        (6, "bad-altered", REJECTED, [("BAD_SIGNATURE", "signature")]),
        (7, "good-2", ACCEPTED, []),
        (8, "bad-art16", REJECTED, [("ART16_PROHIBITED", "$.blood_type")]),
        (9, "bad-no-notice", REJECTED, [("ART22_NOTICE_MISSING", "notice")]),
        (10, "bad-not-json", REJECTED, [("PAYLOAD_NOT_JSON", "payload_json")]),
        (11, "bad-future", REJECTED, [("INVALID_TIME", "occurred_at")]),
        (12, "good-3", ACCEPTED, []),
    ]
    assert (result.accepted, result.duplicates, result.rejected) == (3, 0, 10)
    assert all(r.record_id for r in result.results if r.outcome == ACCEPTED)
    assert all(not r.record_id for r in result.results if r.outcome == REJECTED)
    assert stored_ids(h) == ["good-1", "good-2", "good-3"]
    assert {r.id for r in stored_rows(h)} == {
        r.record_id for r in result.results if r.outcome == ACCEPTED
    }


def test_signature_under_a_key_id_the_provider_never_registered_is_rejected(
    harness: Harness,
) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    record = amr_punishment(amr, h.clock.now, "unknown-kid")
    record.key_id = "not-a-registered-kid"

    result = submit(h, amr, [record])

    assert summary(result) == [(0, "unknown-kid", REJECTED, [("BAD_SIGNATURE", "key_id")])]
    assert stored_ids(h) == []


def test_schema_violation_names_the_value_that_is_wrong(harness: Harness) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    record = amr_punishment(amr, h.clock.now, "long-no", punishment("E" * 65))

    (violation,) = submit(h, amr, [record]).results[0].violations

    assert (violation.reason, violation.field) == ("SCHEMA_VIOLATION", "$.decision_no")
    assert stored_ids(h) == []


def test_schema_violation_for_a_missing_property_names_that_property(harness: Harness) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    payload = punishment()
    del payload["authority"]
    record = amr_punishment(amr, h.clock.now, "no-authority", payload)

    (violation,) = submit(h, amr, [record]).results[0].violations

    assert (violation.reason, violation.field) == ("SCHEMA_VIOLATION", "$.authority")
    assert stored_ids(h) == []


# --- idempotency (Art 14) ----------------------------------------------------------------------


def test_the_same_record_in_two_batches_is_stored_once(harness: Harness) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    record = amr_punishment(amr, h.clock.now, "r-1")

    first = submit(h, amr, [record])
    again = submit(h, amr, [record])

    assert summary(first) == [(0, "r-1", ACCEPTED, [])]
    assert summary(again) == [(0, "r-1", DUPLICATE, [])]
    assert again.results[0].record_id == first.results[0].record_id
    assert (again.accepted, again.duplicates, again.rejected) == (0, 1, 0)
    assert [r.id for r in stored_rows(h)] == [first.results[0].record_id]


def test_the_same_record_twice_in_one_batch_is_stored_once(harness: Harness) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    record = amr_punishment(amr, h.clock.now, "r-1")

    result = submit(h, amr, [record, record])

    assert summary(result) == [(0, "r-1", ACCEPTED, []), (1, "r-1", DUPLICATE, [])]
    assert result.results[0].record_id == result.results[1].record_id
    assert [r.id for r in stored_rows(h)] == [result.results[0].record_id]


def test_same_record_id_with_other_content_is_refused_and_the_record_is_unchanged(
    harness: Harness,
) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    now = h.clock.now
    first = submit(h, amr, [amr_punishment(amr, now, "r-1")])
    (before,) = stored_rows(h)

    changed = submit(h, amr, [amr_punishment(amr, now, "r-1", punishment("E-CHANGED"))])

    assert summary(changed) == [
        (0, "r-1", REJECTED, [("CONFLICTING_RESUBMISSION", "provider_record_id")])
    ]
    assert changed.results[0].record_id == ""
    (after,) = stored_rows(h)
    assert after.id == first.results[0].record_id
    assert (after.digest, after.payload, after.signature, after.submitted_at) == (
        before.digest,
        before.payload,
        before.signature,
        before.submitted_at,
    )


def test_same_record_id_with_other_content_in_one_batch_keeps_the_first(
    harness: Harness,
) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    now = h.clock.now
    batch = [
        amr_punishment(amr, now, "r-1"),
        amr_punishment(amr, now, "r-1", punishment("E-CHANGED")),
    ]

    result = submit(h, amr, batch)

    assert summary(result) == [
        (0, "r-1", ACCEPTED, []),
        (1, "r-1", REJECTED, [("CONFLICTING_RESUBMISSION", "provider_record_id")]),
    ]
    (row,) = stored_rows(h)
    assert row.id == result.results[0].record_id
    assert row.digest == digest_of(amr, now, punishment())


def digest_of(amr: Participant, now: datetime, payload: dict[str, Any]) -> str:
    """The digest the gateway stores for amr_punishment(amr, now, "r-1", payload)."""
    occurred = now - timedelta(days=5)
    submission = Submission(
        amr.id, "r-1", "ADM.PUNISHMENT", PERSON, payload, occurred, WrittenNotice("N-1", occurred)
    )
    return hashlib.sha256(submission.signing_bytes()).hexdigest()


# --- encryption at rest ------------------------------------------------------------------------


def test_non_open_payloads_are_sealed_at_rest(harness: Harness) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    tax = h.add_participant("hubei-tax", "providing-unit")
    court = h.add_participant("hubei-court", "providing-unit")
    now = h.clock.now
    secret_violation = "MARKER-VIOLATION-7c1e"
    secret_amount = 98765.4321
    open_court = "MARKER-COURT-3f9a"
    submit(
        h,
        amr,
        [amr_punishment(amr, now, "pun", punishment(violation=secret_violation))],
    )
    submit(
        h,
        tax,
        [
            signed_record(
                tax,
                record_id="tax",
                item="TAX.PAID",
                subject=PERSON,
                payload={"year": 2025, "amount_cny": secret_amount},
                occurred_at=now - timedelta(days=3),
            )
        ],
    )
    # JUD.DISHONEST_DEBTOR is OPEN for every kind of subject: a control showing that the scan
    # below finds a payload that is stored in clear.
    submit(
        h,
        court,
        [
            signed_record(
                court,
                record_id="jud",
                item="JUD.DISHONEST_DEBTOR",
                subject=PERSON,
                payload={"case_no": "C-1", "court": open_court, "listed_on": "2026-01-01"},
                occurred_at=now - timedelta(days=3),
                notice="N-2",
            )
        ],
    )

    rows = {r.provider_record_id: r for r in stored_rows(h)}
    assert set(rows) == {"pun", "tax", "jud"}
    for name, marker in (("pun", secret_violation), ("tax", str(secret_amount))):
        assert rows[name].payload_key_id, f"{name}: non-open payload stored without a key"
        assert marker.encode() not in rows[name].payload, f"{name}: payload in clear"
    assert open_court.encode() in rows["jud"].payload


def test_subject_identity_number_is_never_stored_in_clear(harness: Harness) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    agency = h.add_participant("zx-credit", "credit-agency")
    make_agreement(h, agency, categories=("administrative_punishment", "joint_discipline_list"))
    now = h.clock.now
    submit(h, amr, [amr_punishment(amr, now, "pun"), enterprise(amr, now, "reg")])
    # An inquiry about the person writes an audit entry naming the subject.
    inquiry_pb2_grpc.InquiryServiceStub(agency.channel).QueryOpen(
        inquiry_pb2.QueryRequest(
            subject_code=PERSON,
            purpose="LOAN_APPROVAL",
            agreement_id="agr-zx-credit",
            item_codes=["ADM.PUNISHMENT", "JUD.DISHONEST_DEBTOR"],
        ),
        metadata=metadata(h.token(agency)),
        timeout=10,
    )

    needle = PERSON.encode()
    rows_seen: dict[str, int] = {}
    with h.db.transaction(write=False) as session:
        for table in Base.metadata.sorted_tables:  # every table, every column
            rows = session.execute(select(table)).all()
            rows_seen[table.name] = len(rows)
            for row in rows:
                for column, value in zip(table.columns, row, strict=True):
                    raw = value.encode() if isinstance(value, str) else value
                    if isinstance(raw, bytes):
                        assert needle not in raw, f"{table.name}.{column.name} holds the id"
    # The tables that name the subject held rows: the scan looked at something.
    assert (rows_seen["subjects"], rows_seen["records"], inquiry_count(h.db)) == (2, 2, 1)


# --- stream limits and scopes ------------------------------------------------------------------


@pytest.fixture
def small_harness(
    tmp_path: Path, certs_dir: Path, database_url: str, clock: Clock
) -> Iterator[Harness]:
    """A gateway that takes at most three records per submission stream."""
    engine = make_engine(database_url)
    empty(engine)
    engine.dispose()
    running = start_harness(tmp_path, certs_dir, database_url, clock, max_stream_messages=3)
    try:
        yield running
    finally:
        running.close()


def test_a_stream_at_the_limit_is_accepted(small_harness: Harness) -> None:
    h = small_harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    batch = [amr_punishment(amr, h.clock.now, f"r-{i}") for i in range(3)]

    result = submit(h, amr, batch)

    assert result.accepted == 3
    assert stored_ids(h) == ["r-0", "r-1", "r-2"]


def test_a_stream_longer_than_the_limit_is_refused_and_stores_nothing(
    small_harness: Harness,
) -> None:
    h = small_harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    batch = [amr_punishment(amr, h.clock.now, f"r-{i}") for i in range(4)]

    with pytest.raises(grpc.RpcError) as refused:
        submit(h, amr, batch)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == "STREAM_TOO_LONG"
    assert stored_ids(h) == []


def test_a_token_without_submission_scope_is_refused_and_stores_nothing(harness: Harness) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    stub = submission_pb2_grpc.SubmissionServiceStub(amr.channel)

    with pytest.raises(grpc.RpcError) as refused:
        stub.SubmitRecords(
            iter([amr_punishment(amr, h.clock.now, "r-1")]),
            metadata=metadata(h.token(amr, scopes=["inquiry.open"])),
            timeout=10,
        )

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == "SCOPE_MISSING"
    with h.db.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(RecordRow)) == 0
        assert session.scalar(select(func.count()).select_from(SubjectRow)) == 0


# --- concurrent submissions --------------------------------------------------------------------


def race(
    h: Harness,
    provider: Participant,
    batches: list[list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    look_up: str,
    backend: str,
) -> tuple[list[Any], list[grpc.RpcError]]:
    """Submits the batches at once from two threads, forcing the interleaving that matters:
    each submission, having looked `look_up` up and found nothing, waits until the other has
    looked too. SQLite lets one writer in at a time, so there the first stops waiting soon."""
    patience = 0.5 if backend == "sqlite" else 5.0
    both_looked = threading.Barrier(len(batches))
    original = getattr(record_store, look_up)
    calls = iter(range(len(batches)))  # only the first look-up of each submission waits

    def look_then_wait(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        if next(calls, None) is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                both_looked.wait(timeout=patience)
        return found

    monkeypatch.setattr(record_store, look_up, look_then_wait)
    results: list[Any] = []
    errors: list[grpc.RpcError] = []

    def send(batch: list[Any]) -> None:
        try:
            results.append(submit(h, provider, batch))
        except grpc.RpcError as err:
            errors.append(err)

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    monkeypatch.undo()
    return results, errors


def test_the_same_record_submitted_concurrently_is_stored_once(
    harness: Harness, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    now = h.clock.now
    submit(h, amr, [enterprise(amr, now, "known")])  # the subject exists: only the record races
    record = signed_record(
        amr,
        record_id="r-1",
        item="ADM.PERMIT",
        subject=COMPANY,
        payload={"permit_no": "P-1", "permit_type": "food", "authority": "AMR"},
        occurred_at=now - timedelta(days=1),
    )

    results, errors = race(h, amr, [[record], [record]], monkeypatch, "existing_digest", backend)

    assert [(e.code(), reason_of(e)) for e in errors] == []
    assert sorted(r.outcome for res in results for r in res.results) == [ACCEPTED, DUPLICATE]
    assert len({r.record_id for res in results for r in res.results}) == 1
    assert stored_ids(h) == ["known", "r-1"]


def test_records_of_a_new_subject_submitted_concurrently_are_all_stored(
    harness: Harness, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    now = h.clock.now

    results, errors = race(
        h,
        amr,
        [[amr_punishment(amr, now, "r-a")], [amr_punishment(amr, now, "r-b")]],
        monkeypatch,
        "find_subject",
        backend,
    )

    assert [(e.code(), reason_of(e)) for e in errors] == []
    assert sorted(r.outcome for res in results for r in res.results) == [ACCEPTED, ACCEPTED]
    assert stored_ids(h) == ["r-a", "r-b"]
    with h.db.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(SubjectRow)) == 1


def test_an_over_long_notice_rejects_its_record_not_the_stream(harness: Harness) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    now = h.clock.now
    long_notice = signed_record(
        amr,
        record_id="long-notice",
        item="ADM.PUNISHMENT",
        subject=PERSON,
        payload=punishment(),
        occurred_at=now - timedelta(days=5),
        notice="N-1" + "0" * 126,
    )
    result = submit(h, amr, [long_notice, enterprise(amr, now, "good")])
    assert summary(result) == [
        (
            0,
            "long-notice",
            submission_pb2.RecordResult.OUTCOME_REJECTED,
            [("FIELD_TOO_LONG", "notice.number")],
        ),
        (1, "good", submission_pb2.RecordResult.OUTCOME_ACCEPTED, []),
    ]
    assert [r.provider_record_id for r in stored_rows(h)] == ["good"]


def test_a_new_subject_submitted_concurrently_as_two_kinds_is_held_as_one(
    harness: Harness, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #11 item 1: `121101190408136711` is valid as a resident id and as a USCC; two
    providers' records racing to add it as different kinds leave one subject of one kind."""
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    now = h.clock.now
    batches = [
        [
            signed_record(
                amr,
                record_id=f"as-{kind.value}",
                item="ADM.PERMIT",
                subject="121101190408136711",
                payload={"permit_no": "P-1", "permit_type": "food", "authority": "AMR"},
                occurred_at=now - timedelta(days=1),
                kind=kind,
            )
        ]
        for kind in (SubjectKind.NATURAL_PERSON, SubjectKind.LEGAL_PERSON)
    ]

    results, errors = race(h, amr, batches, monkeypatch, "find_subject", backend)

    assert [(e.code(), reason_of(e)) for e in errors] == []
    outcomes = sorted(summary(r)[0][1:] for r in results)
    with h.db.transaction(write=False) as session:
        (kind,) = session.scalars(select(SubjectRow.kind)).all()
    loser = "as-legal_person" if kind == "natural_person" else "as-natural_person"
    assert [o for o in outcomes if o[1] == REJECTED] == [
        (loser, REJECTED, [("SUBJECT_KIND_MISMATCH", "subject_kind")])
    ]
    assert stored_ids(h) == sorted({"as-legal_person", "as-natural_person"} - {loser})
