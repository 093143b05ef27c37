"""What a batch of record changes lets a platform have (domain/exchange.decide_batch): no I/O.

The batch is judged subject by subject by policy.decide on the feed's or the delivery's channel,
so these tests state what comes of each kind of change (sent with content, sent without, or
skipped), what refuses the whole batch and what skips one subject, the audit entries, and the
order; the property at the end holds decide_batch to decide: it never sends content that decide
would not release for that subject. The catalog is the shipped one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_gateway.domain.agreements import Agreement, AgreementStatus, Operation, Quotas
from credit_gateway.domain.catalog import Catalog, Category, DisclosureLevel
from credit_gateway.domain.decisions import LABEL_OBJECTION_PENDING, Decision, Outcome, Reason
from credit_gateway.domain.exchange import (
    BatchDecision,
    Caller,
    ChangeKind,
    Outgoing,
    PendingChange,
    decide_batch,
)
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.participants import ParticipantKind
from credit_gateway.domain.policy import (
    OBJECTION_RESPONSE_PERIOD,
    AgreementState,
    Channel,
    RecordState,
    ReleaseRequest,
    decide,
)

CATALOG = Catalog.from_document(
    json.loads(
        (Path(__file__).resolve().parents[3] / "src/credit_gateway/data/catalog.json").read_text()
    )
)
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
FEED, DELIVERY = Channel.EXCHANGE_FEED, Channel.EXCHANGE_DELIVERY
CHANNELS = pytest.mark.parametrize("channel", [FEED, DELIVERY], ids=lambda c: c.value)
OPERATION = {FEED: Operation.CHANGE_FEED, DELIVERY: Operation.PUSH}
METHOD = {FEED: "SubscribeChanges", DELIVERY: "Deliver:national"}
PLATFORM = "platform-n"
LP, NP = SubjectKind.LEGAL_PERSON, SubjectKind.NATURAL_PERSON
# Subjects as the feed reads them: the gateway's subject id and its kind.
COMPANY = ("sbj_company", LP)
COMPANY_2 = ("sbj_company_2", LP)
PERSON = ("sbj_person", NP)
Subject = tuple[str, SubjectKind]

# The shipped catalog's items, by what the exchange makes of them (for a legal person).
PUNISHMENT = "ADM.PUNISHMENT"  # public, open
INSURANCE = "SOC.INSURANCE_ARREARS"  # public, government level
TAX_ARREARS = "TAX.ARREARS"  # public, open
PERMIT = "ADM.PERMIT"  # public, but outside the agreement below
MARKET = "MKT.LOAN_REPAYMENT"  # market information (Art 3): never exchanged
TAX_PAID = "TAX.PAID"  # Art 16 written consent: never exchanged
REGISTRATION = "REG.ENTERPRISE"  # SELF level for a natural person: never exchanged for one
OUTSIDE = (PERMIT, MARKET, TAX_PAID)  # what the platform may never have of a legal person


def agreement_state(
    channel: Channel,
    *,
    status: AgreementStatus = AgreementStatus.ACTIVE,
    calls_today: int = 0,
    records_today: int = 0,
    **changes: Any,
) -> AgreementState:
    terms: dict[str, Any] = {
        "id": "agr-exchange",
        "counterparty": PLATFORM,
        "operations": frozenset({OPERATION[channel]}),
        "items": frozenset(),
        "categories": frozenset(Category) - {Category.ADMINISTRATIVE_PERMIT},
        "purposes": frozenset({"SUPERVISION"}),
        "levels": frozenset(
            {DisclosureLevel.OPEN, DisclosureLevel.AUTHORIZED, DisclosureLevel.GOVERNMENT}
        ),
        "subject_kinds": frozenset(SubjectKind),
        "quotas": Quotas(calls_per_day=10, records_per_day=10),
        "valid_from": NOW - 30 * DAY,
        "valid_until": NOW + 300 * DAY,
    }
    return AgreementState(Agreement(**(terms | changes)), status, calls_today, records_today)


def platform(
    channel: Channel = FEED,
    *,
    kind: ParticipantKind = ParticipantKind.NATIONAL_PLATFORM,
    state: AgreementState | None = None,
) -> Caller:
    return Caller(
        channel=channel,
        id=PLATFORM,
        kind=kind,
        agreement=state or agreement_state(channel),
        purpose="SUPERVISION",
        method=METHOD[channel],
    )


def changed(
    seq: int,
    kind: ChangeKind,
    item: str,
    subject: Subject = COMPANY,
    *,
    record_id: str | None = None,
    in_service: bool = True,
    objection_filed_at: datetime | None = None,
    occurred_at: datetime = NOW - 30 * DAY,
    replaces: str | None = None,
) -> PendingChange:
    """A change of seq `seq`, its record (by default `rec-<seq>`) as it stands now."""
    record = RecordState(
        record_id or f"rec-{seq}", item, occurred_at, in_service, objection_filed_at
    )
    return PendingChange(seq, kind, record, subject[0], subject[1], NOW - DAY, replaces)


def sent(batch: BatchDecision) -> list[tuple[int, bool]]:
    """(seq, with content) of each change sent, in the order sent."""
    return [(o.change.seq, o.with_content) for o in batch.outgoing]


NEW, CORRECTED, SUSPENDED, RESTORED, DELETED, EXPIRED = (
    ChangeKind.NEW,
    ChangeKind.CORRECTED,
    ChangeKind.SUSPENDED,
    ChangeKind.RESTORED,
    ChangeKind.DELETED,
    ChangeKind.EXPIRED,
)
SUSPENDED_AT = NOW - OBJECTION_RESPONSE_PERIOD  # an objection unanswered for 15 days (Art 29)


# ------------------------------------------------------------------ what is sent


@CHANNELS
def test_new_records_of_several_subjects_sent_with_content(channel: Channel) -> None:
    changes = [
        changed(1, NEW, PUNISHMENT, COMPANY),
        changed(2, NEW, INSURANCE, COMPANY_2),
        changed(3, NEW, TAX_ARREARS, COMPANY),
        changed(4, NEW, PUNISHMENT, PERSON),
    ]
    batch = decide_batch(platform(channel), changes, CATALOG, NOW)
    assert batch.refusal is None
    assert batch.outgoing == tuple(Outgoing(c, True) for c in changes)


@CHANNELS
def test_new_record_under_objection_sent_with_its_label(channel: Channel) -> None:
    pending = changed(1, NEW, PUNISHMENT, objection_filed_at=SUSPENDED_AT + timedelta(seconds=1))
    batch = decide_batch(platform(channel), [pending], CATALOG, NOW)
    assert batch.outgoing == (Outgoing(pending, True, (LABEL_OBJECTION_PENDING,)),)


@CHANNELS
def test_corrected_record_sent_with_content_and_what_it_replaces(channel: Channel) -> None:
    correction = changed(7, CORRECTED, PUNISHMENT, replaces="rec-1")
    batch = decide_batch(platform(channel), [correction], CATALOG, NOW)
    assert batch.outgoing == (Outgoing(correction, True),)
    assert batch.outgoing[0].change.replaces == "rec-1"


@CHANNELS
@pytest.mark.parametrize(
    ("item", "subject"),
    [
        (PERMIT, COMPANY),  # outside the agreement's categories
        (MARKET, COMPANY),  # market information
        (TAX_PAID, COMPANY),  # Art 16 written consent
        (REGISTRATION, PERSON),  # SELF level for a person
    ],
    ids=["outside-agreement", "market", "written-consent", "self-level"],
)
def test_new_record_of_an_item_the_platform_may_not_have_skipped(
    channel: Channel, item: str, subject: Subject
) -> None:
    other = changed(2, NEW, PUNISHMENT, COMPANY_2)
    batch = decide_batch(platform(channel), [changed(1, NEW, item, subject), other], CATALOG, NOW)
    assert batch.refusal is None
    assert sent(batch) == [(2, True)]
    assert [e.subject_id for e in batch.entries] == [COMPANY_2[0]]


@CHANNELS
def test_new_record_the_policy_withholds_skipped(channel: Channel) -> None:
    changes = [
        changed(1, NEW, PUNISHMENT, occurred_at=NOW - 1095 * DAY),  # past its disclosure period
        changed(2, NEW, INSURANCE, objection_filed_at=SUSPENDED_AT),  # suspended meanwhile
        changed(3, NEW, TAX_ARREARS, in_service=False),  # archived meanwhile
        changed(4, NEW, TAX_ARREARS, occurred_at=NOW - 1095 * DAY + timedelta(seconds=1)),
    ]
    assert sent(decide_batch(platform(channel), changes, CATALOG, NOW)) == [(4, True)]


@CHANNELS
@pytest.mark.parametrize("kind", [RESTORED, DELETED, EXPIRED], ids=lambda k: k.value)
def test_record_taken_out_of_service_sent_without_content(
    channel: Channel, kind: ChangeKind
) -> None:
    archived = changed(5, kind, PUNISHMENT, in_service=False)
    batch = decide_batch(platform(channel), [archived], CATALOG, NOW)
    assert batch.refusal is None
    assert batch.outgoing == (Outgoing(archived, False),)
    [entry] = batch.entries
    assert entry.released_records == ()  # a withdrawal releases nothing


@CHANNELS
@pytest.mark.parametrize("kind", [RESTORED, DELETED, EXPIRED], ids=lambda k: k.value)
def test_withdrawal_of_a_record_still_in_service_skipped(
    channel: Channel, kind: ChangeKind
) -> None:
    """Changed again since (put back in service): its later change speaks for it."""
    batch = decide_batch(platform(channel), [changed(5, kind, PUNISHMENT)], CATALOG, NOW)
    assert batch.outgoing == ()
    assert batch.entries == ()


@CHANNELS
@pytest.mark.parametrize(
    ("record", "withdrawn"),
    [
        ({"objection_filed_at": SUSPENDED_AT}, True),  # OBJECTION_SUSPENDED
        ({"objection_filed_at": NOW - 200 * DAY}, True),
        ({"objection_filed_at": SUSPENDED_AT + timedelta(seconds=1)}, False),  # still pending
        ({}, False),  # the objection resolved since
        ({"objection_filed_at": SUSPENDED_AT, "in_service": False}, False),  # NOT_IN_SERVICE
        ({"objection_filed_at": SUSPENDED_AT, "occurred_at": NOW - 1095 * DAY}, True),
    ],
    ids=[
        "suspended",
        "suspended-long-ago",
        "pending",
        "resolved",
        "archived-since",
        "suspended-and-past-its-disclosure-period",
    ],
)
def test_suspension_sent_without_content_only_when_withheld_for_the_objection(
    channel: Channel, record: dict[str, Any], withdrawn: bool
) -> None:
    suspension = changed(3, SUSPENDED, INSURANCE, **record)
    batch = decide_batch(platform(channel), [suspension], CATALOG, NOW)
    assert batch.outgoing == ((Outgoing(suspension, False),) if withdrawn else ())


@CHANNELS
@pytest.mark.parametrize("item", OUTSIDE)
@pytest.mark.parametrize("kind", [SUSPENDED, RESTORED, DELETED], ids=lambda k: k.value)
def test_withdrawal_of_an_item_the_platform_may_not_have_never_sent(
    channel: Channel, item: str, kind: ChangeKind
) -> None:
    """Not even its record id leaves: a withdrawal would name an item the platform never had."""
    withdrawn = changed(1, kind, item, in_service=False, objection_filed_at=SUSPENDED_AT)
    archived = changed(2, kind, item, in_service=kind is SUSPENDED, objection_filed_at=SUSPENDED_AT)
    batch = decide_batch(platform(channel), [withdrawn, archived], CATALOG, NOW)
    assert batch == BatchDecision(None, (), ())


@CHANNELS
def test_withdrawal_at_a_level_not_agreed_never_sent(channel: Channel) -> None:
    state = agreement_state(channel, levels=frozenset({DisclosureLevel.OPEN}))
    changes = [
        changed(1, DELETED, INSURANCE, in_service=False),  # government level
        changed(2, SUSPENDED, INSURANCE, objection_filed_at=SUSPENDED_AT),
        changed(3, DELETED, PUNISHMENT, in_service=False),  # open
    ]
    assert sent(decide_batch(platform(channel, state=state), changes, CATALOG, NOW)) == [(3, False)]


@CHANNELS
def test_record_new_then_deleted_in_one_batch_sent_as_deleted_only(channel: Channel) -> None:
    """Both changes carry the record as it is now (archived): the NEW is skipped, and the
    platform, which may have had it from an earlier batch, is told it is withdrawn."""
    new = changed(1, NEW, PUNISHMENT, record_id="rec-x", in_service=False)
    deleted = changed(2, DELETED, PUNISHMENT, record_id="rec-x", in_service=False)
    batch = decide_batch(platform(channel), [new, deleted], CATALOG, NOW)
    assert batch.outgoing == (Outgoing(deleted, False),)


@CHANNELS
def test_the_daily_quotas_do_not_hold_back_the_feed_or_the_delivery(channel: Channel) -> None:
    state = agreement_state(channel, calls_today=10_000, records_today=10_000)
    changes = [changed(n, NEW, PUNISHMENT, COMPANY) for n in range(1, 16)]  # past 10 a day
    batch = decide_batch(platform(channel, state=state), changes, CATALOG, NOW)
    assert batch.refusal is None
    assert sent(batch) == [(n, True) for n in range(1, 16)]


# ------------------------------------------------------------------ the audit entries


@CHANNELS
def test_one_audit_entry_per_subject_with_something_sent(channel: Channel) -> None:
    changes = [
        changed(1, NEW, PUNISHMENT, COMPANY),
        changed(2, NEW, MARKET, COMPANY_2),  # COMPANY_2: nothing sent, no entry
        changed(3, DELETED, TAX_ARREARS, COMPANY, in_service=False),
        changed(4, NEW, INSURANCE, COMPANY),
        changed(5, NEW, PERMIT, COMPANY),  # skipped
        changed(6, NEW, PUNISHMENT, PERSON),
    ]
    batch = decide_batch(platform(channel), changes, CATALOG, NOW)
    assert [e.subject_id for e in batch.entries] == [COMPANY[0], PERSON[0]]
    company, person = batch.entries
    for entry in batch.entries:
        assert entry.id.startswith("inq_")
        assert entry.at == NOW
        assert entry.caller == PLATFORM
        assert entry.method == METHOD[channel]
        assert entry.purpose == "SUPERVISION"
        assert entry.agreement_id == "agr-exchange"
        assert entry.consent_id is None
    # the records released with content, not the withdrawal
    assert company.released_records == ("rec-1", "rec-4")
    assert company.items == tuple(sorted({PUNISHMENT, TAX_ARREARS, INSURANCE, PERMIT}))
    # the changes not sent (the skipped PERMIT); a withdrawal sent is not counted withheld
    assert company.withheld_records == 1
    # decide's reasons: the items the law keeps from every platform, then the records withheld
    assert company.outcome == Outcome.PARTIAL.value
    assert company.reasons == (
        Reason.NOT_PUBLIC_CREDIT_INFORMATION.value,  # MKT.LOAN_REPAYMENT
        Reason.WRITTEN_CONSENT_REQUIRED.value,  # TAX.PAID
        Reason.NOT_IN_SERVICE.value,  # rec-3
    )
    assert person.released_records == ("rec-6",)
    assert person.withheld_records == 0
    assert len({e.id for e in batch.entries}) == 2


@CHANNELS
def test_a_withheld_record_is_on_record_and_not_sent(channel: Channel) -> None:
    """A record of an item the platform may have, withheld by the policy: nothing goes, and the
    decision is an entry all the same; an item it may not have (market information) is neither
    sent nor named."""
    changes = [changed(1, NEW, MARKET), changed(2, NEW, PUNISHMENT, in_service=False)]
    batch = decide_batch(platform(channel), changes, CATALOG, NOW)
    assert batch.refusal is None
    assert batch.outgoing == ()
    assert batch.withheld == (("rec-2", Reason.NOT_IN_SERVICE),)
    (entry,) = batch.entries
    assert entry.released_records == ()
    assert entry.outcome == "WITHHELD"
    assert "NOT_IN_SERVICE" in entry.reasons


@CHANNELS
def test_nothing_changed_nothing_on_record(channel: Channel) -> None:
    assert decide_batch(platform(channel), [], CATALOG, NOW) == BatchDecision(None, (), ())
    only_market = [changed(1, NEW, MARKET)]
    assert decide_batch(platform(channel), only_market, CATALOG, NOW) == BatchDecision(None, (), ())


# ------------------------------------------------------------------ refusals


def _refusing(channel: Channel) -> list[tuple[str, Caller, Reason]]:
    def with_state(**changes: Any) -> Caller:
        return platform(channel, state=agreement_state(channel, **changes))

    return [
        (
            "suspended",
            with_state(status=AgreementStatus.SUSPENDED),
            Reason.AGREEMENT_SUSPENDED,
        ),
        ("expired", with_state(valid_until=NOW), Reason.AGREEMENT_EXPIRED),
        ("not-yet-valid", with_state(valid_from=NOW + DAY), Reason.AGREEMENT_NOT_YET_VALID),
        (
            "operation-not-agreed",
            with_state(operations=frozenset(Operation) - {OPERATION[channel]}),
            Reason.OPERATION_NOT_AGREED,
        ),
        ("purpose-not-agreed", with_state(purposes=frozenset({"LOAN"})), Reason.PURPOSE_NOT_AGREED),
        ("other-party", with_state(counterparty="platform-p"), Reason.AGREEMENT_OTHER_PARTY),
        (
            "credit-agency",
            platform(channel, kind=ParticipantKind.CREDIT_AGENCY),
            Reason.CALLER_KIND_NOT_ALLOWED,
        ),
        (
            "government-department",
            platform(channel, kind=ParticipantKind.GOVERNMENT_DEPARTMENT),
            Reason.CALLER_KIND_NOT_ALLOWED,
        ),
    ]


@pytest.mark.parametrize(
    ("caller", "reason"),
    [
        pytest.param(caller, reason, id=f"{channel.value}-{name}")
        for channel in (FEED, DELIVERY)
        for name, caller, reason in _refusing(channel)
    ],
)
def test_refusal_of_the_request_refuses_the_batch(caller: Caller, reason: Reason) -> None:
    changes = [
        changed(1, NEW, PUNISHMENT, COMPANY),
        changed(2, NEW, PUNISHMENT, COMPANY_2),
        changed(3, DELETED, PUNISHMENT, PERSON, in_service=False),
    ]
    batch = decide_batch(caller, changes, CATALOG, NOW)
    assert batch.refusal is reason
    assert batch.outgoing == ()
    [entry] = batch.entries
    assert entry.outcome == Outcome.REFUSED.value
    assert entry.reasons == (reason.value,)
    assert entry.released_records == ()
    assert entry.caller == PLATFORM
    assert entry.method == caller.method
    assert entry.agreement_id == "agr-exchange"


@CHANNELS
def test_subject_of_a_kind_not_agreed_skipped_the_others_sent(channel: Channel) -> None:
    state = agreement_state(channel, subject_kinds=frozenset({LP}))
    changes = [
        changed(1, NEW, PUNISHMENT, COMPANY),
        changed(2, NEW, PUNISHMENT, PERSON),
        changed(3, DELETED, TAX_ARREARS, PERSON, in_service=False),
        changed(4, NEW, INSURANCE, COMPANY_2),
    ]
    batch = decide_batch(platform(channel, state=state), changes, CATALOG, NOW)
    assert batch.refusal is None
    assert sent(batch) == [(1, True), (4, True)]
    refused = [e for e in batch.entries if e.subject_id == PERSON[0]]
    assert [(e.outcome, e.reasons, e.released_records) for e in refused] == [
        (Outcome.REFUSED.value, (Reason.SUBJECT_KIND_NOT_AGREED.value,), ())
    ]
    assert {e.subject_id for e in batch.entries} == {COMPANY[0], PERSON[0], COMPANY_2[0]}


# ------------------------------------------------------------------ order


@CHANNELS
def test_outgoing_in_seq_order_across_subjects(channel: Channel) -> None:
    changes = [
        changed(4, NEW, PUNISHMENT, COMPANY),
        changed(1, NEW, PUNISHMENT, PERSON),
        changed(3, DELETED, TAX_ARREARS, COMPANY_2, in_service=False),
        changed(2, NEW, INSURANCE, COMPANY),
        changed(6, NEW, MARKET, PERSON),  # skipped
        changed(5, CORRECTED, TAX_ARREARS, PERSON),
    ]
    batch = decide_batch(platform(channel), changes, CATALOG, NOW)
    assert sent(batch) == [(1, True), (2, True), (3, False), (4, True), (5, True)]


# ------------------------------------------------------------------ decide_batch is decide


_SUBJECTS = [COMPANY, COMPANY_2, PERSON, ("sbj_org", SubjectKind.OTHER_ORGANISATION)]
_SOMETIMES = st.integers(0, 2).map(lambda n: n == 0)
_RECORD = st.tuples(
    st.sampled_from([*sorted(CATALOG.items), "NOPE.ITEM"]),
    st.integers(0, 1500).map(lambda days: NOW - days * DAY),
    _SOMETIMES.map(lambda archived: not archived),
    _SOMETIMES.flatmap(
        lambda objected: st.integers(0, 30).map(lambda d: NOW - d * DAY) if objected else st.none()
    ),
)


def _mostly(value: Any, other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`value` two times in three, else a draw of `other`: most batches are allowed."""
    return _SOMETIMES.flatmap(lambda damaged: other if damaged else st.just(value))


@st.composite
def _batches(draw: st.DrawFn) -> tuple[Caller, list[PendingChange]]:
    channel = draw(st.sampled_from([FEED, DELIVERY]))
    agreed = agreement_state(channel).agreement
    state = agreement_state(
        channel,
        status=draw(_mostly(AgreementStatus.ACTIVE, st.sampled_from(AgreementStatus))),
        categories=draw(_mostly(agreed.categories, st.frozensets(st.sampled_from(Category)))),
        items=draw(st.frozensets(st.sampled_from(sorted(CATALOG.items)))),
        levels=draw(_mostly(agreed.levels, st.frozensets(st.sampled_from(DisclosureLevel)))),
        subject_kinds=draw(
            _mostly(agreed.subject_kinds, st.frozensets(st.sampled_from(SubjectKind)))
        ),
        operations=draw(_mostly(agreed.operations, st.frozensets(st.sampled_from(Operation)))),
    )
    # Each record has one current state, which every change of it carries.
    records = draw(st.lists(st.tuples(st.sampled_from(_SUBJECTS), _RECORD), min_size=1, max_size=8))
    picks = draw(st.lists(st.integers(0, len(records) - 1), max_size=12))
    changes = []
    for seq, n in enumerate(picks, start=1):
        subject, (item, at, live, objection) = records[n]
        kind = draw(st.sampled_from(ChangeKind))
        changes.append(
            changed(seq, kind, item, subject, record_id=f"r{n}", in_service=live,
                    objection_filed_at=objection, occurred_at=at)
        )  # fmt: skip
    return platform(channel, state=state), draw(st.permutations(changes))


def _decided(caller: Caller, changes: Sequence[PendingChange]) -> dict[str, Decision]:
    """policy.decide for each subject's records, asked as the platform's own request would."""
    by_subject: dict[str, dict[str, RecordState]] = {}
    kinds: dict[str, SubjectKind] = {}
    for c in changes:
        by_subject.setdefault(c.subject_id, {})[c.record.id] = c.record
        kinds[c.subject_id] = c.subject_kind
    return {
        subject_id: decide(
            ReleaseRequest(
                channel=caller.channel,
                caller_id=caller.id,
                caller_kind=caller.kind,
                subject_id=subject_id,
                subject_kind=kinds[subject_id],
                purpose=caller.purpose,
                agreement=caller.agreement,
                records=tuple(records.values()),
            ),
            CATALOG,
            NOW,
        )
        for subject_id, records in by_subject.items()
    }


@settings(max_examples=300, deadline=None)
@given(_batches())
def test_property_decide_batch_never_releases_more_than_decide(
    batch_in: tuple[Caller, list[PendingChange]],
) -> None:
    caller, changes = batch_in
    batch = decide_batch(caller, changes, CATALOG, NOW)
    decisions = _decided(caller, changes)
    seqs = [o.change.seq for o in batch.outgoing]
    assert seqs == sorted(set(seqs)), "sent out of order, or a change twice"
    assert {o.change for o in batch.outgoing} <= set(changes)
    if batch.refusal is not None:
        assert batch.outgoing == ()
        assert len(batch.entries) == 1
        assert batch.refusal in {d.refusal for d in decisions.values()}
        return
    for o in batch.outgoing:
        decision = decisions[o.change.subject_id]
        released = {r.record_id: r.labels for r in decision.releases}
        withheld = {w.record_id: w.reason for w in decision.withheld_records}
        if o.with_content:
            assert o.change.kind in (NEW, CORRECTED)
            assert released.get(o.change.record.id) == o.labels, "sent what decide withholds"
        else:
            assert o.change.kind in (SUSPENDED, RESTORED, DELETED, EXPIRED)
            assert o.labels == ()
            # withheld for what the change did, so its item is one the platform may have
            assert withheld.get(o.change.record.id) is (
                Reason.OBJECTION_SUSPENDED if o.change.kind is SUSPENDED else Reason.NOT_IN_SERVICE
            )
    # and nothing decide releases is held back from a new or corrected change
    for c in changes:
        decision = decisions[c.subject_id]
        if c.kind in (NEW, CORRECTED) and c.record.id in {r.record_id for r in decision.releases}:
            assert Outgoing(c, True, _labels(decision, c.record.id)) in batch.outgoing
    # an entry for each subject with anything sent, withheld by decide or refused, naming what
    # left with content; what was withheld and not sent is named with its reason
    went = {o.change.record.id for o in batch.outgoing}
    held = {
        (w.record_id, w.reason)
        for d in decisions.values()
        if d.refusal is None
        for w in d.withheld_records
        if w.record_id not in went
    }
    assert set(batch.withheld) == held
    expected = {
        subject_id
        for subject_id, d in decisions.items()
        if d.refusal is not None
        or any(o.change.subject_id == subject_id for o in batch.outgoing)
        or any(w.record_id not in went for w in d.withheld_records)
    }
    assert sorted(e.subject_id or "" for e in batch.entries) == sorted(expected)
    for entry in batch.entries:  # (in the order the changes came: the feed reads them by seq)
        assert sorted(entry.released_records) == sorted(
            o.change.record.id
            for o in batch.outgoing
            if o.with_content and o.change.subject_id == entry.subject_id
        )


def _labels(decision: Decision, record_id: str) -> tuple[str, ...]:
    return next(r.labels for r in decision.releases if r.record_id == record_id)
