"""Art 16 prohibited information (religion, genes, fingerprints, blood type, illness, medical
history) anywhere in a submitted record's payload.

Guarded since 2ed4303 (exchange/submission.py; now services/submission.py and
domain/art16.prohibited_paths, on names normalised for case, separators, camelCase, full-width
forms and the Chinese names since #11): Art 16 para 2 (1) forbids collecting it, and a payload is
free JSON, so a key naming such information is looked for at any depth, in lists, in any case,
before the item's schema is checked. The record is rejected ART16_PROHIBITED at that path and
nothing of it is stored. (tests/integration/test_submission.py has a top-level one in a batch.)
"""

from __future__ import annotations

from typing import Any

import pytest
from support.harness import PERSON, metadata, signed_record
from support.scenario import Consented, stored_record_ids

from credit_gateway.adapters.grpc.v1 import submission_pb2, submission_pb2_grpc

PUNISHMENT = {
    "decision_no": "D-9",
    "violation": "unlicensed trading",
    "penalty": "fine",
    "decided_on": "2026-01-02",
    "authority": "Wuhan AMR",
}
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "BloodType")  # as an IME types it
HIDDEN = {
    "nested, in another case": ({"notes": {"Blood_Type": "A"}}, "$.notes.Blood_Type"),
    "in a list": ({"annex": [{"page": 1}, {"RELIGION": "x"}]}, "$.annex[1].RELIGION"),
    "at the top": ({"medical_history": "none"}, "$.medical_history"),
    # What outside clients found passing the exact match (#11 item 3).
    "camelCase": ({"bloodType": "A"}, "$.bloodType"),
    "kebab-case": ({"blood-type": "A"}, "$.blood-type"),
    "medical records": ({"medical_records": "x"}, "$.medical_records"),
    "religion in Chinese": ({"宗教信仰": "x"}, "$.宗教信仰"),
    "blood type in Chinese": ({"血型": "A"}, "$.血型"),
    "full-width": ({FULL_WIDTH: "A"}, f"$.{FULL_WIDTH}"),
}


@pytest.mark.parametrize(("extra", "path"), HIDDEN.values(), ids=HIDDEN.keys())
def test_a_record_with_prohibited_information_is_rejected_and_not_stored(
    world: Consented, extra: dict[str, Any], path: str
) -> None:
    record = signed_record(
        world.provider,
        record_id="art16",
        item="ADM.PUNISHMENT",
        subject=PERSON,
        payload={**PUNISHMENT, **extra},
        occurred_at=world.h.clock.now,
        notice="N-9",
    )
    result = submission_pb2_grpc.SubmissionServiceStub(world.provider.channel).SubmitRecords(
        iter([record]), metadata=metadata(world.h.token(world.provider)), timeout=10
    )
    (outcome,) = result.results
    assert outcome.outcome == submission_pb2.RecordResult.OUTCOME_REJECTED
    assert [(v.reason, v.field) for v in outcome.violations] == [("ART16_PROHIBITED", path)]
    assert stored_record_ids(world.h.db) == ["seed-1"]
