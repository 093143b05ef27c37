"""Minors (PIPL Art 31) without I/O: age on a Beijing date (domain/minors.py), the guardian a
minor's consent needs (consent/lifecycle.guardian_of, and the grant and approval flows that call
it), and the open channel's refusal of a minor's items unless a State provision allows them
(domain/policy.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.consent import lifecycle
from credit_gateway.consent.lifecycle import (
    GUARDIAN_AUTHORISED,
    Approve,
    Grant,
    Guardian,
    Reads,
    ReadState,
    Signature,
    StoredSubject,
    Writes,
    guardian_of,
)
from credit_gateway.domain.agreements import Agreement, AgreementStatus, Operation, Quotas
from credit_gateway.domain.audit import AuditEntry
from credit_gateway.domain.catalog import (
    Art16Class,
    Catalog,
    CatalogItem,
    Category,
    DisclosureLevel,
    InfoKind,
    Polarity,
)
from credit_gateway.domain.consent import (
    ConsentRequest,
    ConsentTerms,
    RequestStatus,
    artefact_bytes,
)
from credit_gateway.domain.decisions import ItemWithheld, Reason, RecordRelease
from credit_gateway.domain.identifiers import SubjectKind, resident_id_check_character
from credit_gateway.domain.minors import is_adult, is_minor
from credit_gateway.domain.participants import (
    Licence,
    Participant,
    ParticipantKind,
    ParticipantStatus,
)
from credit_gateway.domain.policy import (
    AgreementState,
    Channel,
    RecordState,
    ReleaseRequest,
    decide,
)
from credit_gateway.domain.release import Subject
from credit_gateway.errors import (
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    PermissionDenied,
)

BEIJING = timezone(timedelta(hours=8))
TICK = timedelta(microseconds=1)
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
NP = SubjectKind.NATURAL_PERSON


def resident_id(born: date, sequence: str = "123") -> str:
    body = f"110105{born:%Y%m%d}{sequence}"
    return body + resident_id_check_character(body)


def person(born: date, lookup: str) -> Subject:
    return Subject(NP, resident_id(born), lookup)


def anniversary(born: date, years: int) -> date:
    """The civil date a person born on `born` is `years` old: 29 February's is 1 March in a
    year without one."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return date(born.year + years, 3, 1)


def beijing_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), BEIJING)


# --- age on the gateway's clock ------------------------------------------------------------------

BIRTHS = st.dates(min_value=date(1900, 1, 1), max_value=date(2080, 12, 31))
INSTANTS = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
)


@given(BIRTHS)
def test_a_person_turns_14_at_midnight_beijing_time_on_its_birthday(born: date) -> None:
    midnight = beijing_midnight(anniversary(born, 14))
    assert is_minor(born, midnight - TICK)
    assert not is_minor(born, midnight)
    # The same instant on a UTC clock (16:00 the day before): 14 already, not at 08:00.
    assert not is_minor(born, midnight.astimezone(UTC))
    assert is_minor(born, midnight.astimezone(UTC) - TICK)


@given(BIRTHS, INSTANTS)
def test_a_minor_is_under_14_and_an_adult_18_or_over_on_the_beijing_date(
    born: date, now: datetime
) -> None:
    assert is_minor(born, now) == (now < beijing_midnight(anniversary(born, 14)))
    assert is_adult(born, now) == (now >= beijing_midnight(anniversary(born, 18)))


def test_a_leap_day_birthday_is_reached_on_1_march() -> None:
    born = date(2012, 2, 29)
    assert is_minor(born, beijing_midnight(date(2026, 3, 1)) - TICK)  # 28 February: still 13
    assert not is_minor(born, beijing_midnight(date(2026, 3, 1)))


def test_only_a_natural_persons_resident_id_makes_a_minor() -> None:
    child = person(date(2013, 6, 1), "lookup-child")
    assert child.born == date(2013, 6, 1)
    assert is_minor(child.born, NOW)
    assert Subject(SubjectKind.LEGAL_PERSON, "91350100M000100Y43", "lookup-co").born is None
    assert not is_minor(None, NOW)


# --- the guardian a minor's consent needs ---------------------------------------------------------

CHILD = person(date(2013, 6, 1), "lookup-child")  # 13 at NOW
ADULT = person(date(1985, 1, 1), "lookup-adult")
TEEN = person(date(2009, 1, 1), "lookup-teen")  # 17 at NOW: consents alone, guards no one
GUARDIAN_ID = "sbj_guardian"
JWK = '{"kty": "EC"}'  # what the fake check below takes for a registered key
GOOD = Signature(b"good", "kid-g")
ON_RECORD = StoredSubject(GUARDIAN_ID, JWK, NP)


def terms() -> ConsentTerms:
    return ConsentTerms(
        grantee="zx-credit",
        purpose_code="LOAN_APPROVAL",
        purpose_text="mortgage application",
        item_codes=frozenset({"ADM.PUNISHMENT"}),
        categories=frozenset(),
        data_from=NOW - 365 * DAY,
        data_to=NOW + DAY,
        valid_from=NOW - timedelta(minutes=1),
        valid_until=NOW + 30 * DAY,
        max_uses=5,
    )


ARTEFACT = artefact_bytes(CHILD.code, terms())


def check(public_jwk: str, key_id: str, data: bytes, signature: bytes) -> bool:
    """Verifies the guardian's signature over exactly CHILD's artefact of terms()."""
    return (public_jwk, key_id, signature, data) == (JWK, "kid-g", b"good", ARTEFACT)


def guardian(subject: Subject = ADULT, signature: Signature = GOOD) -> Guardian:
    return Guardian(subject, signature)


def authorised(
    subject: Subject, given: Guardian | None, found: StoredSubject | None = ON_RECORD
) -> str | None:
    return guardian_of(subject, given, found, ARTEFACT, NOW, check)


def refusal(call: Callable[[], object]) -> tuple[type[GatewayError], str]:
    with pytest.raises(GatewayError) as caught:
        call()
    return type(caught.value), caught.value.reason


def test_a_minors_consent_names_the_adult_registered_guardian_that_signed_it() -> None:
    assert authorised(CHILD, guardian()) == GUARDIAN_ID


def test_anyone_else_consents_alone() -> None:
    company = Subject(SubjectKind.LEGAL_PERSON, "91350100M000100Y43", "lookup-co")
    assert [authorised(s, None) for s in (ADULT, TEEN, company)] == [None, None, None]


@pytest.mark.parametrize(
    ("subject", "given", "found", "refused"),
    [
        (CHILD, None, ON_RECORD, (FailedPrecondition, "GUARDIAN_REQUIRED")),
        (ADULT, guardian(), ON_RECORD, (InvalidArgument, "GUARDIAN_NOT_NEEDED")),
        (CHILD, guardian(TEEN), ON_RECORD, (FailedPrecondition, "GUARDIAN_NOT_ADULT")),
        (CHILD, guardian(CHILD), ON_RECORD, (FailedPrecondition, "GUARDIAN_NOT_ADULT")),
        (CHILD, guardian(), None, (FailedPrecondition, "GUARDIAN_NOT_REGISTERED")),
        (
            CHILD,
            guardian(),
            StoredSubject(GUARDIAN_ID, None, NP),
            (FailedPrecondition, "GUARDIAN_NOT_REGISTERED"),
        ),
        (
            CHILD,
            guardian(),
            StoredSubject(GUARDIAN_ID, JWK, SubjectKind.LEGAL_PERSON),
            (FailedPrecondition, "GUARDIAN_NOT_REGISTERED"),
        ),
        (
            CHILD,
            guardian(signature=Signature(b"forged", "kid-g")),
            ON_RECORD,
            (PermissionDenied, "GUARDIAN_SIGNATURE_INVALID"),
        ),
        (
            CHILD,
            guardian(signature=Signature()),
            ON_RECORD,
            (PermissionDenied, "GUARDIAN_SIGNATURE_INVALID"),
        ),
    ],
    ids=[
        "minor-alone",
        "adult-with-a-guardian",
        "guardian-under-18",
        "minor-as-its-own-guardian",
        "guardian-not-on-record",
        "guardian-without-a-key",
        "guardian-not-a-person",
        "forged-signature",
        "unsigned",
    ],
)
def test_what_a_minors_guardian_must_be(
    subject: Subject,
    given: Guardian | None,
    found: StoredSubject | None,
    refused: tuple[type[GatewayError], str],
) -> None:
    assert refusal(lambda: authorised(subject, given, found)) == refused


def test_a_signature_over_other_terms_does_not_authorise() -> None:
    other = artefact_bytes(CHILD.code, replace(terms(), max_uses=4))
    assert refusal(lambda: guardian_of(CHILD, guardian(), ON_RECORD, other, NOW, check)) == (
        PermissionDenied,
        "GUARDIAN_SIGNATURE_INVALID",
    )


# --- the flows: what is read, written and recorded ------------------------------------------------

CATALOG = Catalog.from_document(
    json.loads(
        (Path(__file__).resolve().parents[3] / "src/credit_gateway/data/catalog.json").read_text()
    )
)
AGENCY = Participant(
    "zx-credit",
    ParticipantKind.CREDIT_AGENCY,
    "91350100M000100Y43",
    "ZX Credit",
    ParticipantStatus.ACTIVE,
    frozenset(),
    Licence("L-1", NOW + 365 * DAY),
)


def agreement() -> AgreementState:
    return AgreementState(
        Agreement(
            id="agr-zx-credit",
            counterparty="zx-credit",
            operations=frozenset({Operation.INQUIRY}),
            items=frozenset(),
            categories=frozenset(Category),
            purposes=frozenset({"LOAN_APPROVAL"}),
            levels=frozenset(DisclosureLevel),
            subject_kinds=frozenset(SubjectKind),
            quotas=Quotas(100, 1000),
            valid_from=NOW - DAY,
            valid_until=NOW + 365 * DAY,
        ),
        AgreementStatus.ACTIVE,
    )


@dataclass
class OneState:
    """A ConsentStore that reads `state` whatever is asked, and keeps what it was asked."""

    state: ReadState
    reads: list[Reads] = field(default_factory=list)
    committed: list[Writes] = field(default_factory=list)
    recorded: list[AuditEntry] = field(default_factory=list)  # refusals' entries

    def read(self, reads: Reads) -> ReadState:
        return self.state

    def change(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
        self.reads.append(reads)
        self.committed.append(decide(self.state))  # a refusal raises: nothing committed
        return True

    def record(self, entry: AuditEntry) -> None:
        self.recorded.append(entry)


def child_store(**state: Any) -> OneState:
    """CHILD on record (no key of its own), the agency eligible, the guardian on record."""
    base = ReadState(
        subject=StoredSubject("sbj_child", None, NP),
        grantee=AGENCY,
        agreements=(agreement(),),
        guardian=ON_RECORD,
    )
    return OneState(replace(base, **state))


def test_a_minors_grant_without_a_guardian_is_refused_and_only_the_refusal_recorded() -> None:
    store = child_store()
    flow = Grant(CHILD, terms(), Signature(), CATALOG, NOW, check)
    assert refusal(lambda: lifecycle.run(flow, store)) == (FailedPrecondition, "GUARDIAN_REQUIRED")
    assert store.committed == []
    (entry,) = store.recorded
    assert (entry.method, entry.outcome, entry.reasons) == (
        "GrantConsent",
        "REFUSED",
        ("GUARDIAN_REQUIRED",),
    )
    assert (entry.subject_id, entry.agreement_id) == ("sbj_child", "agr-zx-credit")


def test_a_minors_grant_with_its_guardian_keeps_the_guardian_and_says_so() -> None:
    store = child_store()
    flow = Grant(CHILD, terms(), Signature(), CATALOG, NOW, check, guardian())
    granted = lifecycle.run(flow, store)
    (reads,) = store.reads
    assert reads.guardian_lookup == ADULT.lookup
    (writes,) = store.committed
    assert writes.consent is not None
    assert (writes.consent.guardian_id, writes.consent.guardian_signature) == (GUARDIAN_ID, b"good")
    assert writes.consent.artefact == ARTEFACT  # the bytes both the minor and its guardian gave
    assert writes.consent.consent.evidence == lifecycle.EVIDENCE_REAL_NAME  # the minor's own will
    assert writes.audit is not None
    assert (writes.audit.outcome, writes.audit.reasons) == ("GRANTED", (GUARDIAN_AUTHORISED,))
    assert writes.audit.consent_id == granted.id
    assert store.recorded == []


def test_an_adults_grant_reads_no_guardian_and_its_entry_names_no_reason() -> None:
    store = child_store(guardian=None)
    lifecycle.run(Grant(ADULT, terms(), Signature(), CATALOG, NOW, check), store)
    assert store.reads[0].guardian_lookup is None
    (writes,) = store.committed
    assert writes.consent is not None
    assert (writes.consent.guardian_id, writes.consent.guardian_signature) == (None, None)
    assert writes.audit is not None
    assert writes.audit.reasons == ()


def test_a_minor_approves_a_request_with_its_guardian_signing_the_terms_asked_for() -> None:
    asked = ConsentRequest("crq_1", "sbj_child", terms(), RequestStatus.PENDING, NOW - DAY)
    store = child_store(request=asked)
    alone = Approve(CHILD, "crq_1", Signature(), CATALOG, NOW, check)
    assert refusal(lambda: lifecycle.run(alone, store)) == (FailedPrecondition, "GUARDIAN_REQUIRED")
    assert store.recorded[0].request_id == "crq_1"

    lifecycle.run(Approve(CHILD, "crq_1", Signature(), CATALOG, NOW, check, guardian()), store)
    (writes,) = store.committed
    assert writes.consent is not None
    assert writes.consent.guardian_id == GUARDIAN_ID
    assert writes.decision is not None
    assert writes.decision.status is RequestStatus.APPROVED
    assert writes.audit is not None
    assert (writes.audit.outcome, writes.audit.reasons) == ("APPROVED", (GUARDIAN_AUTHORISED,))


# --- the open channel ----------------------------------------------------------------------------

LISTED = "LIST.DISHONEST"  # open for persons by a State provision, which does not name minors
SPORTS = "LIST.SPORTS_BAN"  # as open, by a provision that names minors too


def open_item(code: str, minors_provision: str = "") -> CatalogItem:
    open_ = DisclosureLevel.OPEN
    return CatalogItem(
        code=code,
        title=code.title(),
        category=Category.JOINT_DISCIPLINE_LIST,
        info_kind=InfoKind.PUBLIC,
        polarity=Polarity.UNTRUSTWORTHY,
        providers=frozenset({"provider-a"}),
        schema={"type": "object"},
        disclosure=dict.fromkeys(
            (NP, SubjectKind.LEGAL_PERSON, SubjectKind.OTHER_ORGANISATION), open_
        ),
        disclosure_period_days=1825,
        art16=Art16Class.ORDINARY,
        open_by_state_provision="a State provision",
        open_to_minors_by_state_provision=minors_provision,
    )


OPEN_CATALOG = Catalog(
    version="minors-1",
    items={
        i.code: i for i in (open_item(LISTED), open_item(SPORTS, "a State provision naming minors"))
    },
)


def open_inquiry(born: date) -> ReleaseRequest:
    return ReleaseRequest(
        channel=Channel.OPEN_INQUIRY,
        caller_id="zx-credit",
        caller_kind=ParticipantKind.CREDIT_AGENCY,
        subject_id="sbj_1",
        subject_kind=NP,
        purpose="LOAN_APPROVAL",
        requested_items=(LISTED, SPORTS),
        agreement=agreement(),
        records=(
            RecordState("rec-l", LISTED, NOW - 30 * DAY),
            RecordState("rec-s", SPORTS, NOW - 30 * DAY),
        ),
        subject_born=born,
    )


def test_the_open_channel_withholds_a_minors_item_unless_a_state_provision_allows_it() -> None:
    decision = decide(open_inquiry(date(2013, 6, 1)), OPEN_CATALOG, NOW)
    assert decision.refusal is None
    assert decision.withheld_items == (ItemWithheld(LISTED, Reason.MINOR_NOT_OPEN),)
    assert decision.releases == (RecordRelease("rec-s", SPORTS),)


def test_the_open_channel_releases_both_once_the_subject_is_14() -> None:
    born = date(2012, 11, 28)  # 14 at midnight Beijing time on 28 November: 16:00 UTC on the 27th
    assert decide(open_inquiry(born), OPEN_CATALOG, NOW).withheld_items != ()
    fourteen = decide(open_inquiry(born), OPEN_CATALOG, datetime(2026, 11, 27, 16, 0, tzinfo=UTC))
    assert fourteen.withheld_items == ()
    assert {r.record_id for r in fourteen.releases} == {"rec-l", "rec-s"}
