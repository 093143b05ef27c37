"""The objection's rules without I/O (domain/objections.py): its input, who may file and answer,
its states by the clock, and the written result."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.domain import objections as rules
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.objections import ObjectedRecord, Objection, State
from credit_gateway.domain.policy import OBJECTION_RESPONSE_PERIOD
from credit_gateway.errors import CallerError, FailedPrecondition, InvalidArgument, NotFound

NOW = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
RECORD = ObjectedRecord(
    id="rec_1",
    subject_id="sbj_1",
    subject_lookup="lookup-1",
    subject_kind=SubjectKind.NATURAL_PERSON,
    provider_id="hubei-amr",
    provider_record_id="P-1",
    item_code="ADM.PUNISHMENT",
    in_service=True,
)


def _reason(call: object) -> tuple[type[CallerError], str]:
    assert callable(call)
    with pytest.raises(CallerError) as caught:
        call()
    return type(caught.value), caught.value.reason


def _filed() -> Objection:
    return rules.file(RECORD, "sbj_1", False, "wrong", "DOC-1", NOW)


# --- input ------------------------------------------------------------------------------------


@given(st.text(max_size=2100))
def test_a_text_is_taken_as_written_within_its_bounds_or_refused_with_why(text: str) -> None:
    expected = (
        "UNSTORABLE_TEXT" if "\x00" in text
        else "MISSING_FIELD" if not text
        else "FIELD_TOO_LONG" if len(text) > rules.MAX_REASON
        else None
    )  # fmt: skip
    if expected is None:
        assert rules.checked_text("reason", text, max_length=rules.MAX_REASON) == text  # uncut
        return
    with pytest.raises(InvalidArgument) as refused:
        rules.checked_text("reason", text, max_length=rules.MAX_REASON)
    assert refused.value.reason == expected
    assert [v.field for v in refused.value.violations] == ["reason"]


def test_the_evidence_reference_may_be_empty_and_the_bounds_themselves_are_taken() -> None:
    assert rules.checked_text("e", "", max_length=rules.MAX_EVIDENCE, required=False) == ""
    assert rules.checked_text("e", "é" * 256, max_length=rules.MAX_EVIDENCE) == "é" * 256
    assert _reason(lambda: rules.checked_text("e", "x" * 257, max_length=256)) == (
        InvalidArgument, "FIELD_TOO_LONG",
    )  # fmt: skip


@given(st.integers(min_value=-(2**31), max_value=2**32))
def test_a_list_holds_the_default_when_asked_for_none_and_never_more_than_the_cap(n: int) -> None:
    limit = rules.list_limit(n)
    assert limit == (rules.MAX_LIST if n <= 0 else min(n, rules.MAX_LIST))
    assert 1 <= limit <= rules.MAX_LIST


# --- filing -----------------------------------------------------------------------------------


def test_an_objection_filed_is_pending_and_due_15_days_on() -> None:
    o = rules.file(RECORD, "sbj_1", False, "wrong", "DOC-1", NOW)
    assert (o.state, o.record_id, o.subject_id, o.provider_id, o.item_code) == (
        State.PENDING, "rec_1", "sbj_1", "hubei-amr", "ADM.PUNISHMENT",
    )  # fmt: skip
    assert (o.filed_at, o.due_at) == (NOW, NOW + timedelta(days=15))
    assert o.id.startswith("obj_")
    assert rules.written_result(o) is None


@pytest.mark.parametrize(
    ("record", "subject_id", "already_open", "expected"),
    [
        (None, "sbj_1", False, (NotFound, "RECORD_NOT_FOUND")),
        (RECORD, "sbj_2", False, (NotFound, "RECORD_NOT_FOUND")),  # another's: as absent
        (RECORD, None, False, (NotFound, "RECORD_NOT_FOUND")),  # the caller is not on record
        (replace(RECORD, in_service=False), "sbj_1", False, (FailedPrecondition, "NOT_IN_SERVICE")),
        (RECORD, "sbj_1", True, (FailedPrecondition, "OBJECTION_ALREADY_OPEN")),
    ],
)
def test_a_subject_objects_once_to_its_own_records_in_service(
    record: ObjectedRecord | None,
    subject_id: str | None,
    already_open: bool,
    expected: tuple[type[CallerError], str],
) -> None:
    assert _reason(lambda: rules.file(record, subject_id, already_open, "r", "", NOW)) == expected


def test_a_subject_sees_its_own_objections_only() -> None:
    o = _filed()
    assert rules.own(o, "sbj_1") is o
    for subject in ("sbj_2", None):
        assert _reason(lambda s=subject: rules.own(o, s)) == (NotFound, "OBJECTION_NOT_FOUND")
    assert _reason(lambda: rules.own(None, "sbj_1")) == (NotFound, "OBJECTION_NOT_FOUND")


# --- the clock ----------------------------------------------------------------------------------


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)))
def test_pending_is_suspended_from_its_due_at_on_as_the_policy_enforces(later: timedelta) -> None:
    o = _filed()
    now = NOW + later
    overdue = later >= OBJECTION_RESPONSE_PERIOD
    assert o.effective_state(now) is (State.SUSPENDED if overdue else State.PENDING)
    assert o.effective_suspended_at(now) == (o.due_at if overdue else None)
    assert rules.back_on_feed(o, now) is overdue
    # As `maintain` writes it, and once answered: the row's state stands.
    written = replace(o, state=State.SUSPENDED, suspended_at=o.due_at + timedelta(hours=1))
    assert written.effective_state(now) is State.SUSPENDED
    assert written.effective_suspended_at(now) == o.due_at + timedelta(hours=1)
    assert rules.rejected(o, "no", "aud_1", now).effective_state(now + later) is State.REJECTED


# --- answering ----------------------------------------------------------------------------------


def test_only_the_records_provider_answers_and_only_once() -> None:
    o = _filed()
    assert rules.answerable(o, "hubei-amr") is o
    assert rules.answerable(replace(o, state=State.SUSPENDED), "hubei-amr").is_open
    not_found = (NotFound, "OBJECTION_NOT_FOUND")
    assert _reason(lambda: rules.answerable(o, "hubei-tax")) == not_found
    assert _reason(lambda: rules.answerable(None, "hubei-amr")) == not_found
    for state in (State.UPHELD, State.REJECTED):
        answered = replace(o, state=state)
        assert _reason(lambda a=answered: rules.answerable(a, "hubei-amr")) == (
            FailedPrecondition, "OBJECTION_ANSWERED",
        )  # fmt: skip


def test_a_correction_is_of_the_same_item_and_subject_and_under_an_id_of_its_own() -> None:
    person = SubjectKind.NATURAL_PERSON
    rules.check_correction(RECORD, "ADM.PUNISHMENT", "lookup-1", person)
    for args, reason in [
        (("ADM.PERMIT", "lookup-1", person), "CORRECTION_OTHER_ITEM"),
        (("ADM.PUNISHMENT", "lookup-2", person), "CORRECTION_OTHER_SUBJECT"),
        (("ADM.PUNISHMENT", "lookup-1", SubjectKind.LEGAL_PERSON), "CORRECTION_OTHER_SUBJECT"),
    ]:
        assert _reason(lambda a=args: rules.check_correction(RECORD, *a)) == (
            InvalidArgument, reason,
        )  # fmt: skip
    archived = replace(RECORD, in_service=False)
    same = ("ADM.PUNISHMENT", "lookup-1", person)
    assert _reason(lambda: rules.check_correction(archived, *same)) == (
        FailedPrecondition, "NOT_IN_SERVICE",
    )  # fmt: skip
    assert rules.correction_stored("rec_2", "P-2") == "rec_2"
    assert _reason(lambda: rules.correction_stored(None, "P-1")) == (
        InvalidArgument, "CORRECTION_ID_TAKEN",
    )  # fmt: skip


def test_an_answer_after_the_due_date_keeps_the_suspension_on_record() -> None:
    o = _filed()
    later = NOW + timedelta(days=20)
    rejected = rules.rejected(o, "it stands", "aud_1", later)
    upheld = rules.upheld(o, "corrected", "rec_2", "aud_2", later)
    assert (rejected.state, rejected.suspended_at, rejected.answered_at) == (
        State.REJECTED, o.due_at, later,
    )  # fmt: skip
    assert (upheld.state, upheld.replacement_id, upheld.answer_entry_id) == (
        State.UPHELD, "rec_2", "aud_2",
    )  # fmt: skip
    on_time = rules.rejected(o, "it stands", "aud_1", NOW + timedelta(days=1))
    assert on_time.suspended_at is None


# --- the written result -------------------------------------------------------------------------


@given(st.text(min_size=1, max_size=rules.MAX_REASON).filter(lambda t: "\x00" not in t))
def test_the_written_result_says_what_was_decided_by_whom_when_why_and_where_on_record(
    reasons: str,
) -> None:
    o = _filed()
    at = NOW + timedelta(days=3)
    upheld = rules.written_result(rules.upheld(o, reasons, "rec_2", "aud_9", at))
    rejected = rules.written_result(rules.rejected(o, reasons, "aud_9", at))
    assert upheld is not None
    assert rejected is not None
    for text in (upheld, rejected):
        for said in (o.id, "rec_1", "ADM.PUNISHMENT", "hubei-amr", "2026-11-05T08:30:00Z",
                     "aud_9", f"Reasons: {reasons}"):  # fmt: skip
            assert said in text
    assert "upheld" in upheld
    assert "rec_2 replaces it" in upheld
    assert "rejected" in rejected
    assert "rec_2" not in rejected
