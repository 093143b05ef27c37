"""A disclosure period that depends on the record (a punishment's severity): set when the record
is stored, and what every release judges, through the real server."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from support.harness import COMPANY, Harness, make_agreement, metadata, signed_record
from support.scenario import punishment_payload, submit

from credit_gateway.adapters.grpc.v1 import inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.adapters.storage.tables import RecordRow

DAY = timedelta(days=1)


def test_a_general_punishment_is_disclosed_a_year_a_serious_one_three(harness: Harness) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    occurred = h.clock.now - 10 * DAY

    def payload(severity: str | None) -> dict[str, str]:
        said = {"severity": severity} if severity else {}
        return {**punishment_payload(f"D-{severity}"), **said}

    records = [
        signed_record(
            amr,
            record_id=f"P-{severity or 'unsaid'}",
            item="ADM.PUNISHMENT",
            subject=COMPANY,
            payload=payload(severity),
            occurred_at=occurred,
            notice="N-1",
        )
        for severity in ("general", "serious", None)
    ]
    assert submit(h, amr, records).accepted == 3
    with h.db.transaction(write=False) as session:
        rows = session.execute(select(RecordRow.provider_record_id, RecordRow.disclosure_until))
        ends = {record_id: until for record_id, until in rows}
    assert ends == {
        "P-general": occurred + 365 * DAY,
        "P-serious": occurred + 1095 * DAY,
        "P-unsaid": occurred + 1095 * DAY,  # not said: the item's period, the longest
    }

    agency = h.add_participant("zx-credit", "credit-agency", licence_days=2000)
    make_agreement(h, agency, categories=("administrative_punishment",), days=2000)
    stub = inquiry_pb2_grpc.InquiryServiceStub(agency.channel)

    def released() -> int:
        query = inquiry_pb2.QueryRequest(
            subject_code=COMPANY, purpose="LOAN_APPROVAL", agreement_id="agr-zx-credit"
        )
        answer = stub.QueryOpen(query, metadata=metadata(h.token(agency)), timeout=5)
        return len(answer.records)

    assert released() == 3
    h.clock.now = occurred + 365 * DAY - timedelta(seconds=1)
    assert released() == 3  # the general one's last second
    h.clock.now = occurred + 365 * DAY
    assert released() == 2
    h.clock.now = occurred + 1095 * DAY
    assert released() == 0
