"""A submitted record says which kind of subject its code names; the kind is never guessed.

Issue #11 item 1: `121101190408136711` is both a valid resident identity number (GB 11643) and a
valid USCC (GB 32100, an organ of state), and a submission read it as a person. Now
SubmittedRecord.subject_kind is passed to parse_subject_code: without it such a code is the
record's rejection SUBJECT_KIND_REQUIRED, a code that is not valid for the kind named is
SUBJECT_KIND_MISMATCH, and a subject held as one kind is never given records as another
(SUBJECT_KIND_MISMATCH at the write, adapters/storage/records.py `_store`). The other records of
the batch are stored either way. Fixed in 89945fe.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from support.harness import COMPANY, PERSON, signed_record
from support.scenario import Consented, stored_record_ids, stored_subject_kinds, submit, summary

from credit_gateway.adapters.grpc.v1 import common_pb2, submission_pb2
from credit_gateway.domain.identifiers import SubjectKind

AMBIGUOUS = "121101190408136711"
ACCEPTED = submission_pb2.RecordResult.OUTCOME_ACCEPTED
REJECTED = submission_pb2.RecordResult.OUTCOME_REJECTED


def permit(world: Consented, record_id: str, subject: str, kind: SubjectKind | None) -> Any:
    """An ADM.PERMIT record (any kind of subject may hold one) about `subject`, as `kind`."""
    return signed_record(
        world.provider,
        record_id=record_id,
        item="ADM.PERMIT",
        subject=subject,
        payload={"permit_no": f"P-{record_id}", "permit_type": "food", "authority": "AMR"},
        occurred_at=world.h.clock.now - timedelta(days=1),
        kind=kind,
    )


def submitted(world: Consented, records: list[Any]) -> Any:
    return summary(submit(world.h, world.provider, records))


def test_an_ambiguous_code_without_a_kind_is_refused_and_the_rest_stored(
    world: Consented,
) -> None:
    result = submitted(
        world,
        [permit(world, "ambiguous", AMBIGUOUS, None), permit(world, "good", COMPANY, None)],
    )

    assert result == [
        (0, "ambiguous", REJECTED, [("SUBJECT_KIND_REQUIRED", "subject_kind")]),
        (1, "good", ACCEPTED, []),
    ]
    assert stored_record_ids(world.h.db) == ["good", "seed-1"]
    assert stored_subject_kinds(world.h.db) == ["legal_person", "natural_person"]


def test_the_kind_named_decides_how_an_ambiguous_code_is_held(world: Consented) -> None:
    result = submitted(world, [permit(world, "organ", AMBIGUOUS, SubjectKind.LEGAL_PERSON)])

    assert result == [(0, "organ", ACCEPTED, [])]
    # The seed's person and the organ of state: the code was not read as a person.
    assert stored_subject_kinds(world.h.db) == ["legal_person", "natural_person"]


def test_a_code_not_valid_for_the_kind_named_is_refused(world: Consented) -> None:
    result = submitted(
        world,
        [
            permit(world, "company-as-person", COMPANY, SubjectKind.NATURAL_PERSON),
            permit(world, "person-as-company", PERSON, SubjectKind.LEGAL_PERSON),
            permit(world, "good", PERSON, SubjectKind.NATURAL_PERSON),
        ],
    )

    assert result == [
        (0, "company-as-person", REJECTED, [("SUBJECT_KIND_MISMATCH", "subject_kind")]),
        (1, "person-as-company", REJECTED, [("SUBJECT_KIND_MISMATCH", "subject_kind")]),
        (2, "good", ACCEPTED, []),
    ]
    assert stored_record_ids(world.h.db) == ["good", "seed-1"]
    assert stored_subject_kinds(world.h.db) == ["natural_person"]


def test_a_subject_held_as_one_kind_takes_no_record_as_another(world: Consented) -> None:
    first = submitted(world, [permit(world, "organ", AMBIGUOUS, SubjectKind.LEGAL_PERSON)])
    assert first == [(0, "organ", ACCEPTED, [])]

    again = submitted(
        world,
        [
            permit(world, "as-person", AMBIGUOUS, SubjectKind.NATURAL_PERSON),
            permit(world, "organ-2", AMBIGUOUS, SubjectKind.LEGAL_PERSON),
        ],
    )

    assert again == [
        (0, "as-person", REJECTED, [("SUBJECT_KIND_MISMATCH", "subject_kind")]),
        (1, "organ-2", ACCEPTED, []),
    ]
    assert stored_record_ids(world.h.db) == ["organ", "organ-2", "seed-1"]
    assert stored_subject_kinds(world.h.db) == ["legal_person", "natural_person"]


def test_one_batch_naming_a_new_subject_as_two_kinds_stores_the_first_kind_only(
    world: Consented,
) -> None:
    result = submitted(
        world,
        [
            permit(world, "as-person", AMBIGUOUS, SubjectKind.NATURAL_PERSON),
            permit(world, "as-organ", AMBIGUOUS, SubjectKind.LEGAL_PERSON),
        ],
    )

    assert result == [
        (0, "as-person", ACCEPTED, []),
        (1, "as-organ", REJECTED, [("SUBJECT_KIND_MISMATCH", "subject_kind")]),
    ]
    assert stored_record_ids(world.h.db) == ["as-person", "seed-1"]
    assert stored_subject_kinds(world.h.db) == ["natural_person", "natural_person"]


def test_a_resubmission_as_another_kind_is_refused_not_a_duplicate(world: Consented) -> None:
    first = permit(world, "organ", AMBIGUOUS, SubjectKind.LEGAL_PERSON)
    assert submitted(world, [first]) == [(0, "organ", ACCEPTED, [])]

    again = permit(world, "organ", AMBIGUOUS, SubjectKind.NATURAL_PERSON)
    assert submitted(world, [again]) == [
        (0, "organ", REJECTED, [("SUBJECT_KIND_MISMATCH", "subject_kind")])
    ]
    assert stored_record_ids(world.h.db) == ["organ", "seed-1"]


def test_the_kind_is_signed_with_the_record(world: Consented) -> None:
    """The provider's signature says which subject it meant: the kind changed on the way
    does not verify."""
    record = permit(world, "organ", AMBIGUOUS, SubjectKind.LEGAL_PERSON)
    record.subject_kind = common_pb2.SUBJECT_KIND_NATURAL_PERSON

    assert submitted(world, [record]) == [(0, "organ", REJECTED, [("BAD_SIGNATURE", "signature")])]
    assert stored_record_ids(world.h.db) == ["seed-1"]
    assert stored_subject_kinds(world.h.db) == ["natural_person"]


def test_a_kind_this_gateway_does_not_know_is_refused(world: Consented) -> None:
    record = permit(world, "future-kind", COMPANY, None)
    record.subject_kind = 77  # a newer client's value: proto3 enums are open

    assert submitted(world, [record]) == [
        (0, "future-kind", REJECTED, [("UNKNOWN_SUBJECT_KIND", "subject_kind")])
    ]
    assert stored_record_ids(world.h.db) == ["seed-1"]
