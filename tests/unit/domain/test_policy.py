"""Tests for credit_gateway.domain.policy.decide: the single release decision, article by article.

Layout: a small catalog, a baseline ReleaseRequest per channel that `decide` allows in full, then
one table of rows (id, article, channel, mutation, expectation). Each row's id names its article
(DESIGN.md "The rules, article by article"; the text is /work/shared/regulation). Art 17 para 2's
"natural persons are never OPEN unless by State provision" is a catalog invariant and is tested in
tests/unit/domain/test_catalog_agreements.py. Property tests at the end state what holds for any
request.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_gateway.domain.agreements import Agreement, AgreementStatus, Operation, Quotas
from credit_gateway.domain.catalog import (
    Art16Class,
    Catalog,
    CatalogItem,
    Category,
    DisclosureLevel,
    InfoKind,
    Polarity,
)
from credit_gateway.domain.consent import Consent, ConsentStatus, ConsentTerms
from credit_gateway.domain.decisions import (
    LABEL_OBJECTION_PENDING,
    Decision,
    ItemWithheld,
    Outcome,
    Reason,
    RecordRelease,
    RecordWithheld,
)
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.minors import is_minor
from credit_gateway.domain.participants import ParticipantKind as PK
from credit_gateway.domain.policy import (
    OBJECTION_RESPONSE_PERIOD,
    AgreementState,
    Channel,
    RecordState,
    ReleaseRequest,
    decide,
)
from credit_gateway.errors import PermissionDenied, ResourceExhausted

NOW = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)
PERSON = "11010519491231002X"  # resident id: a natural person
COMPANY = "91350100M000100Y43"  # USCC: a legal person
COMPANY_2 = "91110000600037341L"
NP, LP, OO = SubjectKind.NATURAL_PERSON, SubjectKind.LEGAL_PERSON, SubjectKind.OTHER_ORGANISATION
OPEN, AUTH, GOV, SELF = (
    DisclosureLevel.OPEN,
    DisclosureLevel.AUTHORIZED,
    DisclosureLevel.GOVERNMENT,
    DisclosureLevel.SELF,
)
OPEN_INQ, AUTH_INQ, GOV_SHARE, SELF_INQ = (
    Channel.OPEN_INQUIRY,
    Channel.AUTHORIZED_INQUIRY,
    Channel.GOVERNMENT_SHARING,
    Channel.SELF_INQUIRY,
)
PULL, FEED, DELIVERY = Channel.EXCHANGE_PULL, Channel.EXCHANGE_FEED, Channel.EXCHANGE_DELIVERY
EXCHANGE = (PULL, FEED, DELIVERY)  # Art 20 para 3: with the national and provincial platforms
PLATFORMS = frozenset({PK.NATIONAL_PLATFORM, PK.PROVINCIAL_PLATFORM})
# Public credit information alone, never market information or an Art 16 written-consent item
# (Art 20 para 1 and 3).
PUBLIC_ONLY = frozenset({GOV_SHARE, *EXCHANGE})
# The feed and the delivery hand each change over once: no daily call or record quota.
UNCOUNTED = frozenset({FEED, DELIVERY})

# Art 17-18, written out here rather than imported so the tests state the rule independently.
ALLOWED_LEVELS: dict[Channel, frozenset[DisclosureLevel]] = {
    OPEN_INQ: frozenset({OPEN}),
    AUTH_INQ: frozenset({OPEN, AUTH}),
    GOV_SHARE: frozenset({OPEN, AUTH, GOV}),
    SELF_INQ: frozenset(DisclosureLevel),
    **dict.fromkeys(EXCHANGE, frozenset({OPEN, AUTH, GOV})),
}
# Art 20: who may use which channel (the self channel has no participant kind).
ALLOWED_CALLERS: dict[Channel, frozenset[PK]] = {
    OPEN_INQ: frozenset(
        {
            PK.NATIONAL_PLATFORM,
            PK.PROVINCIAL_PLATFORM,
            PK.CREDIT_AGENCY,
            PK.INDUSTRY_ASSOCIATION,
            PK.GOVERNMENT_DEPARTMENT,
        }
    ),
    AUTH_INQ: frozenset({PK.CREDIT_AGENCY, PK.INDUSTRY_ASSOCIATION}),
    GOV_SHARE: frozenset({PK.GOVERNMENT_DEPARTMENT}),
    SELF_INQ: frozenset(),
    **dict.fromkeys(EXCHANGE, PLATFORMS),
}
OPERATION_OF: dict[Channel, Operation] = {
    OPEN_INQ: Operation.INQUIRY,
    AUTH_INQ: Operation.INQUIRY,
    GOV_SHARE: Operation.GOVERNMENT_SHARING,
    PULL: Operation.BULK_PULL,
    FEED: Operation.CHANGE_FEED,
    DELIVERY: Operation.PUSH,  # our delivery to a peer platform is the agreement's push
}


# ------------------------------------------------------------------ the catalog


def _item(
    code: str,
    category: Category,
    levels: dict[SubjectKind, DisclosureLevel],
    period_days: int,
    art16: Art16Class = Art16Class.ORDINARY,
    state_provision: str = "",
    info_kind: InfoKind | None = None,
) -> CatalogItem:
    return CatalogItem(
        code=code,
        title=code.title(),
        category=category,
        info_kind=info_kind
        or (InfoKind.MARKET if category is Category.MARKET else InfoKind.PUBLIC),
        polarity=Polarity.NEUTRAL,
        providers=frozenset({"provider-a"}),
        schema={"type": "object"},
        disclosure=levels,
        disclosure_period_days=period_days,
        art16=art16,
        open_by_state_provision=state_provision,
    )


REG = "REG.ENTERPRISE"  # open for organisations, authorized for persons
PUN = "ADM.PUNISHMENT"  # authorized for everyone
JUD = "JUD.ENFORCEMENT"  # government sharing only
INC = "NP.INCOME"  # Art 16 (2): written consent, named one by one; market information
TAX = "TAX.PAID"  # Art 16 (2): written consent; public credit information
MKT = "MKT.REPAYMENT"  # market information (Art 3 para 3), at every level but SELF
VOL = "VOL.SERVICE"  # the subject alone
LST = "LIST.DISCIPLINE"  # open for everyone, persons by State provision (Art 17 para 2)
UNKNOWN = "NOPE.ITEM"  # not in the catalog

CATALOG = Catalog(
    version="test-1",
    items={
        i.code: i
        for i in (
            _item(REG, Category.REGISTRATION, {NP: AUTH, LP: OPEN, OO: OPEN}, 3650),
            _item(PUN, Category.ADMINISTRATIVE_PUNISHMENT, {NP: AUTH, LP: AUTH, OO: AUTH}, 1095),
            _item(JUD, Category.JUDICIAL, {NP: GOV, LP: GOV, OO: GOV}, 1825),
            _item(
                INC,
                Category.MARKET,
                {NP: AUTH, LP: GOV, OO: GOV},
                365,
                art16=Art16Class.WRITTEN_CONSENT,
            ),
            _item(
                TAX,
                Category.ADMINISTRATIVE_OTHER,
                {NP: AUTH, LP: GOV, OO: AUTH},
                1825,
                art16=Art16Class.WRITTEN_CONSENT,
            ),
            _item(MKT, Category.MARKET, {NP: AUTH, LP: GOV, OO: OPEN}, 1825),
            _item(VOL, Category.COMMENDATION_VOLUNTEER, {NP: SELF, LP: SELF, OO: SELF}, 1825),
            _item(
                LST,
                Category.JOINT_DISCIPLINE_LIST,
                {NP: OPEN, LP: OPEN, OO: OPEN},
                1825,
                state_provision="State Council (2016) No. 33",
            ),
        )
    },
)
CODES = sorted(CATALOG.items)


def rid(code: str) -> str:
    """The id of the baseline record of an item."""
    return f"rec-{code}"


# One record of every item, 30 days old: inside every disclosure period and the consent's range.
RECORDS = tuple(RecordState(rid(code), code, NOW - 30 * DAY) for code in CODES)


# ------------------------------------------------------------------ the baselines


def _agreement(counterparty: str, operation: Operation) -> AgreementState:
    return AgreementState(
        Agreement(
            id=f"agr-{counterparty}",
            counterparty=counterparty,
            operations=frozenset({operation}),
            items=frozenset(),
            categories=frozenset(Category),
            purposes=frozenset({"LOAN", "DUE_DILIGENCE", "SUPERVISION"}),
            levels=frozenset(DisclosureLevel),
            subject_kinds=frozenset(SubjectKind),
            quotas=Quotas(calls_per_day=100, records_per_day=1000),
            valid_from=NOW - 30 * DAY,
            valid_until=NOW + 335 * DAY,
        ),
        AgreementStatus.ACTIVE,
        calls_today=10,
        records_today=20,
    )


CONSENT = Consent(
    id="cns-1",
    subject_id=PERSON,
    terms=ConsentTerms(
        grantee="agency-a",
        purpose_code="LOAN",
        purpose_text="Loan application 42",
        item_codes=frozenset({INC}),  # Art 16: named one by one
        categories=frozenset({Category.ADMINISTRATIVE_PUNISHMENT}),
        data_from=NOW - 365 * DAY,
        data_to=NOW,
        valid_from=NOW - DAY,
        valid_until=NOW + 29 * DAY,
        max_uses=3,
    ),
    status=ConsentStatus.ACTIVE,
    uses=0,
    granted_at=NOW - DAY,
    status_changed_at=NOW - DAY,
    evidence="subject-signature",
)


def baseline(channel: Channel) -> ReleaseRequest:
    """A request on `channel` that decide() allows in full."""
    if channel is OPEN_INQ:
        return ReleaseRequest(
            channel=channel,
            caller_id="agency-a",
            caller_kind=PK.CREDIT_AGENCY,
            subject_id=COMPANY,
            subject_kind=LP,
            purpose="DUE_DILIGENCE",
            requested_items=(REG, LST),
            agreement=_agreement("agency-a", Operation.INQUIRY),
            records=RECORDS,
        )
    if channel is AUTH_INQ:
        return ReleaseRequest(
            channel=channel,
            caller_id="agency-a",
            caller_kind=PK.CREDIT_AGENCY,
            subject_id=PERSON,
            subject_kind=NP,
            purpose="LOAN",
            requested_items=(PUN, INC),
            agreement=_agreement("agency-a", Operation.INQUIRY),
            consent=CONSENT,
            records=RECORDS,
        )
    if channel is GOV_SHARE:
        return ReleaseRequest(
            channel=channel,
            caller_id="dept-market",
            caller_kind=PK.GOVERNMENT_DEPARTMENT,
            subject_id=COMPANY,
            subject_kind=LP,
            purpose="SUPERVISION",
            requested_items=(JUD, PUN),
            agreement=_agreement("dept-market", Operation.GOVERNMENT_SHARING),
            records=RECORDS,
        )
    if channel in EXCHANGE:
        # What government sharing asks (public credit information at the government and the
        # authorized level, for supervision), asked by the national platform under its agreement.
        return dataclasses.replace(
            baseline(GOV_SHARE),
            channel=channel,
            caller_id="platform-n",
            caller_kind=PK.NATIONAL_PLATFORM,
            agreement=_agreement("platform-n", OPERATION_OF[channel]),
        )
    return ReleaseRequest(
        channel=channel,
        caller_id=PERSON,
        caller_kind=None,
        subject_id=PERSON,
        subject_kind=NP,
        purpose="SELF",
        records=RECORDS,
    )


# ------------------------------------------------------------------ mutations

Mutation = Callable[[ReleaseRequest], ReleaseRequest]


def same(request: ReleaseRequest) -> ReleaseRequest:
    return request


def change(**changes: Any) -> Mutation:
    return lambda r: dataclasses.replace(r, **changes)


def asking(*codes: str) -> Mutation:
    return change(requested_items=codes)


def caller(kind: PK | None) -> Mutation:
    return change(caller_kind=kind)


def subject(kind: SubjectKind, subject_id: str) -> Mutation:
    return change(subject_kind=kind, subject_id=subject_id)


def agreement(**changes: Any) -> Mutation:
    def mutate(r: ReleaseRequest) -> ReleaseRequest:
        assert r.agreement is not None
        new = dataclasses.replace(r.agreement.agreement, **changes)
        return dataclasses.replace(r, agreement=dataclasses.replace(r.agreement, agreement=new))

    return mutate


def agreement_state(**changes: Any) -> Mutation:
    def mutate(r: ReleaseRequest) -> ReleaseRequest:
        assert r.agreement is not None
        return dataclasses.replace(r, agreement=dataclasses.replace(r.agreement, **changes))

    return mutate


def consent(**changes: Any) -> Mutation:
    def mutate(r: ReleaseRequest) -> ReleaseRequest:
        assert r.consent is not None
        return dataclasses.replace(r, consent=dataclasses.replace(r.consent, **changes))

    return mutate


def terms(**changes: Any) -> Mutation:
    def mutate(r: ReleaseRequest) -> ReleaseRequest:
        assert r.consent is not None
        new_terms = dataclasses.replace(r.consent.terms, **changes)
        return dataclasses.replace(r, consent=dataclasses.replace(r.consent, terms=new_terms))

    return mutate


def record(code: str, **changes: Any) -> Mutation:
    """Change the baseline record of item `code`."""

    def mutate(r: ReleaseRequest) -> ReleaseRequest:
        records = tuple(
            dataclasses.replace(x, **changes) if x.id == rid(code) else x for x in r.records
        )
        return dataclasses.replace(r, records=records)

    return mutate


def adding(*records: RecordState) -> Mutation:
    return lambda r: dataclasses.replace(r, records=r.records + records)


def both(*mutations: Mutation) -> Mutation:
    def mutate(r: ReleaseRequest) -> ReleaseRequest:
        for m in mutations:
            r = m(r)
        return r

    return mutate


# ------------------------------------------------------------------ expectations


class Expect:
    def check(self, decision: Decision, request: ReleaseRequest) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Refused(Expect):
    reason: Reason

    def check(self, decision: Decision, request: ReleaseRequest) -> None:
        assert decision.refusal is self.reason
        assert decision.outcome is Outcome.REFUSED
        assert decision.releases == ()
        assert decision.withheld_records == ()
        assert decision.uses_consent is False


@dataclass(frozen=True)
class AllReleased(Expect):
    """Every record of the items in question released, unlabelled; nothing withheld."""

    def check(self, decision: Decision, request: ReleaseRequest) -> None:
        assert decision.refusal is None
        assert decision.outcome is Outcome.RELEASED
        wanted = set(request.requested_items or CODES)
        expected = {(x.id, x.item_code) for x in request.records if x.item_code in wanted}
        assert {(x.record_id, x.item_code) for x in decision.releases} == expected
        assert all(x.labels == () for x in decision.releases)
        assert decision.withheld_items == ()
        assert decision.withheld_records == ()


@dataclass(frozen=True)
class ItemOut(Expect):
    """The item is withheld for `reason` and none of its records leave; the request goes on."""

    code: str
    reason: Reason

    def check(self, decision: Decision, request: ReleaseRequest) -> None:
        assert decision.refusal is None
        assert ItemWithheld(self.code, self.reason) in decision.withheld_items
        assert all(x.item_code != self.code for x in decision.releases)
        assert all(x.item_code != self.code for x in decision.withheld_records)
        assert decision.outcome in (Outcome.PARTIAL, Outcome.WITHHELD)


@dataclass(frozen=True)
class RecordIn(Expect):
    record_id: str
    labels: tuple[str, ...] = ()

    def check(self, decision: Decision, request: ReleaseRequest) -> None:
        assert decision.refusal is None
        [release] = [x for x in decision.releases if x.record_id == self.record_id]
        assert release.labels == self.labels
        assert all(x.record_id != self.record_id for x in decision.withheld_records)


@dataclass(frozen=True)
class RecordOut(Expect):
    record_id: str
    reason: Reason

    def check(self, decision: Decision, request: ReleaseRequest) -> None:
        assert decision.refusal is None
        [withheld] = [x for x in decision.withheld_records if x.record_id == self.record_id]
        assert withheld.reason is self.reason
        assert all(x.record_id != self.record_id for x in decision.releases)
        assert decision.outcome in (Outcome.PARTIAL, Outcome.WITHHELD)


@dataclass(frozen=True)
class NeverLeaves(Expect):
    """The record is neither released nor listed (its item was never in question)."""

    record_id: str

    def check(self, decision: Decision, request: ReleaseRequest) -> None:
        assert all(x.record_id != self.record_id for x in decision.releases)
        assert all(x.record_id != self.record_id for x in decision.withheld_records)


@dataclass(frozen=True)
class OutcomeIs(Expect):
    outcome: Outcome

    def check(self, decision: Decision, request: ReleaseRequest) -> None:
        assert decision.outcome is self.outcome


@dataclass(frozen=True)
class Row:
    id: str
    article: str  # "19", or "20.2" for Art 20 para 2
    channel: Channel
    mutate: Mutation
    expect: tuple[Expect, ...]


def row(id: str, article: str, channel: Channel, mutate: Mutation, *expect: Expect) -> Row:
    return Row(id, article, channel, mutate, expect)


R = Reason
OBJECTION = (LABEL_OBJECTION_PENDING,)
FIFTEEN_DAYS = 15 * DAY
# NOW is 2025-06-01 17:30 in Beijing: 14 years old today, and a day short of it.
BORN_14_TODAY = date(2011, 6, 1)
BORN_13 = date(2011, 6, 2)


def _caller_article(channel: Channel, kind: PK) -> str:
    if channel in EXCHANGE:
        return "20.3"  # the exchange channels are the platforms' alone
    if channel is GOV_SHARE:
        return "20.1"  # government departments, for their duties
    if channel is AUTH_INQ:
        return "20.2"  # establishments and associations, under agreement and written consent
    if kind in (PK.NATIONAL_PLATFORM, PK.PROVINCIAL_PLATFORM):
        return "20.3"  # exchange with the national and other provincial platforms
    return "18" if kind in ALLOWED_CALLERS[OPEN_INQ] else "20"  # open information; no others


def _caller_rows() -> list[Row]:
    """Art 18 and 20 paras 1-3: every participant kind on every participant channel."""
    rows = []
    for channel in (OPEN_INQ, AUTH_INQ, GOV_SHARE, *EXCHANGE):
        for kind in PK:
            allowed = kind in ALLOWED_CALLERS[channel]
            article = _caller_article(channel, kind)
            verdict = "may-use" if allowed else "may-not-use"
            rows.append(
                row(
                    f"art{article.replace('.', 'p')}-{kind.value}-{verdict}-{channel.value}",
                    article,
                    channel,
                    caller(kind),
                    AllReleased() if allowed else Refused(R.CALLER_KIND_NOT_ALLOWED),
                )
            )
        rows.append(
            row(
                f"art20-no-participant-kind-refused-on-{channel.value}",
                "20",
                channel,
                caller(None),
                Refused(R.CALLER_KIND_NOT_ALLOWED),
            )
        )
    return rows


def _public_only_rows(ch: Channel) -> list[Row]:
    """Art 20 para 1 (government sharing) and para 3 (exchange with the platforms) share public
    credit information, at every level but SELF, with no consent: market information (Art 3) is
    not public credit information, and Art 16 para 2 (2) items leave only with the person's
    written consent, which neither carries (a consent in the request changes nothing)."""
    article = "20.1" if ch is GOV_SHARE else "20.3"
    prefix = "art20p1" if ch is GOV_SHARE else f"art20p3-{ch.value}"

    def r(name: str, mutate: Mutation, *expect: Expect) -> Row:
        return row(f"{prefix}-{name}", article, ch, mutate, *expect)

    partial = OutcomeIs(Outcome.PARTIAL)
    not_public, written = R.NOT_PUBLIC_CREDIT_INFORMATION, R.WRITTEN_CONSENT_REQUIRED
    revoked = dataclasses.replace(CONSENT, status=ConsentStatus.REVOKED)
    consented = both(
        change(consent=CONSENT), terms(grantee=baseline(ch).caller_id, item_codes=frozenset({INC}))
    )
    return [
        r("needs-no-consent", change(consent=revoked), AllReleased()),
        *[
            r(
                f"gets-{lv}-public-information-{k.value}",
                both(subject(k, c), asking(i)),
                AllReleased(),
            )
            for lv, i, k, c in (
                ("open", REG, LP, COMPANY),
                ("authorized", PUN, NP, PERSON),
                ("government", JUD, OO, COMPANY_2),
            )
        ],
        r(
            "never-gets-self-level",
            both(subject(NP, PERSON), asking(JUD, VOL)),
            ItemOut(VOL, R.NOT_DISCLOSABLE_ON_CHANNEL),
            RecordIn(rid(JUD)),
        ),
        *[
            r(
                f"market-information-at-{lv}-level-withheld-{k.value}",
                both(subject(k, c), asking(MKT, JUD)),
                ItemOut(MKT, not_public),
                RecordIn(rid(JUD)),
                partial,
            )
            for lv, k, c in (
                ("open", OO, COMPANY_2),
                ("authorized", NP, PERSON),
                ("government", LP, COMPANY),
            )
        ],
        *[
            r(
                f"written-consent-item-at-{lv}-level-withheld-{k.value}",
                both(subject(k, c), asking(TAX, JUD)),
                ItemOut(TAX, written),
                RecordIn(rid(JUD)),
                partial,
            )
            for lv, k, c in (("authorized", NP, PERSON), ("government", LP, COMPANY))
        ],
        r(
            "market-reason-before-written-consent",
            both(subject(NP, PERSON), asking(INC, JUD)),
            ItemOut(INC, not_public),
            RecordIn(rid(JUD)),
        ),
        r(
            "written-consent-in-the-request-changes-nothing",
            both(subject(NP, PERSON), asking(INC, TAX, PUN), consented),
            ItemOut(INC, not_public),
            ItemOut(TAX, written),
            RecordIn(rid(PUN)),
        ),
        r(
            "law-before-the-agreement",
            both(asking(MKT, TAX, JUD), agreement(categories=frozenset({Category.JUDICIAL}))),
            ItemOut(MKT, not_public),
            ItemOut(TAX, written),
            RecordIn(rid(JUD)),
        ),
        r("only-market-and-written-consent-asked-refused", asking(MKT, TAX), Refused(not_public)),
        r(
            "default-request-names-what-the-law-withholds",
            asking(),
            ItemOut(MKT, not_public),
            ItemOut(INC, not_public),
            ItemOut(TAX, written),
            ItemOut(VOL, R.NOT_DISCLOSABLE_ON_CHANNEL),
            *(RecordIn(rid(code)) for code in (JUD, PUN, REG, LST)),
            partial,
        ),
    ]


def _exchange_rows(ch: Channel) -> list[Row]:
    """Art 20 para 3 on one exchange channel, beyond what it shares with government sharing: the
    platforms alone, under an agreement naming the channel's operation, at the levels it names;
    each record judged as on every channel. Pulls count against the agreement's daily quotas;
    the feed and the delivery do not."""

    def r(name: str, mutate: Mutation, *expect: Expect) -> Row:
        return row(f"art20p3-{ch.value}-{name}", "20.3", ch, mutate, *expect)

    def quota(*when_counted: Expect) -> tuple[Expect, ...]:
        return when_counted if ch not in UNCOUNTED else (AllReleased(),)

    def out(code: str, reason: Reason) -> RecordOut:
        return RecordOut(rid(code), reason)

    provincial = both(
        caller(PK.PROVINCIAL_PLATFORM),
        change(caller_id="platform-p"),
        agreement(counterparty="platform-p"),
    )
    extra = adding(*(RecordState(f"extra-{i}", PUN, NOW - i * DAY) for i in range(1, 5)))
    one_a_day = both(
        agreement(quotas=Quotas(calls_per_day=1, records_per_day=1)),
        agreement_state(calls_today=0, records_today=0),
        extra,
    )
    all_shared = agreement(levels=frozenset({OPEN, AUTH, GOV}))
    calls_used = R.QUOTA_CALLS_EXHAUSTED
    records_used = R.QUOTA_RECORDS_EXHAUSTED
    objection = record(JUD, objection_filed_at=NOW - FIFTEEN_DAYS)
    pending = record(JUD, objection_filed_at=NOW - FIFTEEN_DAYS + TICK)
    return [
        r("baseline", same, AllReleased()),
        r("provincial-platform-released", provincial, AllReleased()),
        r("levels-the-agreement-names", all_shared, AllReleased()),
        # ---------------------------------------------------- the agreement
        r(
            "operation-not-agreed",
            agreement(operations=frozenset(Operation) - {OPERATION_OF[ch]}),
            Refused(R.OPERATION_NOT_AGREED),
        ),
        r(
            "agreement-suspended",
            agreement_state(status=AgreementStatus.SUSPENDED),
            Refused(R.AGREEMENT_SUSPENDED),
        ),
        r("agreement-expired", agreement(valid_until=NOW), Refused(R.AGREEMENT_EXPIRED)),
        r(
            "agreement-other-party",
            agreement(counterparty="platform-p"),
            Refused(R.AGREEMENT_OTHER_PARTY),
        ),
        r(
            "purpose-not-agreed",
            agreement(purposes=frozenset({"LOAN"})),
            Refused(R.PURPOSE_NOT_AGREED),
        ),
        r(
            "subject-kind-not-agreed",
            agreement(subject_kinds=frozenset({NP, OO})),
            Refused(R.SUBJECT_KIND_NOT_AGREED),
        ),
        r(
            "item-not-agreed",
            agreement(categories=frozenset({Category.JUDICIAL})),
            ItemOut(PUN, R.ITEM_NOT_AGREED),
            RecordIn(rid(JUD)),
        ),
        r(
            "government-level-not-agreed",
            agreement(levels=frozenset({OPEN, AUTH})),
            ItemOut(JUD, R.LEVEL_NOT_AGREED),
            RecordIn(rid(PUN)),
        ),
        r(
            "default-request-skips-unagreed-items",
            both(asking(), agreement(categories=frozenset({Category.JUDICIAL}))),
            RecordIn(rid(JUD)),
            NeverLeaves(rid(PUN)),
            NeverLeaves(rid(REG)),
            OutcomeIs(Outcome.RELEASED),
        ),
        # ---------------------------------------------------- the daily quotas
        r("calls-quota-used-up", agreement_state(calls_today=100), *quota(Refused(calls_used))),
        r("calls-quota-overdrawn", agreement_state(calls_today=5000), *quota(Refused(calls_used))),
        r(
            "records-quota-used-up",
            agreement_state(records_today=1000),
            *quota(out(JUD, records_used), out(PUN, records_used), OutcomeIs(Outcome.WITHHELD)),
        ),
        r(
            "records-quota-runs-out-mid-request",
            agreement_state(records_today=999),
            # ADM.PUNISHMENT sorts first
            *quota(RecordIn(rid(PUN)), out(JUD, records_used), OutcomeIs(Outcome.PARTIAL)),
        ),
        r(
            "more-records-than-the-quota",
            one_a_day,
            # the oldest record of the first item
            *quota(RecordIn(rid(PUN)), RecordOut("extra-1", records_used), out(JUD, records_used)),
        ),
        # ---------------------------------------------------- each record (Art 9, 29-31)
        r(
            "disclosure-period-ended",
            record(JUD, occurred_at=NOW - 1825 * DAY),
            out(JUD, R.DISCLOSURE_PERIOD_ENDED),
            RecordIn(rid(PUN)),
            OutcomeIs(Outcome.PARTIAL),
        ),
        r(
            "disclosure-period-last-instant",
            record(JUD, occurred_at=NOW - 1825 * DAY + TICK),
            AllReleased(),
        ),
        r(  # its own end, set when stored from its severity, or by a restoration
            "stored-disclosure-end-reached",
            record(JUD, disclosure_until=NOW),
            out(JUD, R.DISCLOSURE_PERIOD_ENDED),
            RecordIn(rid(PUN)),
        ),
        r(
            "stored-disclosure-end-governs-the-default",
            record(JUD, occurred_at=NOW - 1825 * DAY, disclosure_until=NOW + TICK),
            AllReleased(),
        ),
        r(
            "record-out-of-service-withheld",
            record(PUN, in_service=False),
            out(PUN, R.NOT_IN_SERVICE),
            RecordIn(rid(JUD)),
        ),
        r("objection-suspended-withheld", objection, out(JUD, R.OBJECTION_SUSPENDED)),
        r("objection-pending-labelled", pending, RecordIn(rid(JUD), OBJECTION), RecordIn(rid(PUN))),
        r(
            "out-of-service-before-objection",
            record(JUD, in_service=False, objection_filed_at=NOW - 200 * DAY),
            out(JUD, R.NOT_IN_SERVICE),
        ),
    ]


ROWS: list[Row] = [
    # ---------------------------------------------------------------- baselines
    row("art18-open-inquiry-baseline", "18", OPEN_INQ, same, AllReleased()),
    row("art19-authorized-inquiry-baseline", "19", AUTH_INQ, same, AllReleased()),
    row("art20p1-government-sharing-baseline", "20.1", GOV_SHARE, same, AllReleased()),
    row("art17-self-inquiry-baseline-every-level", "17", SELF_INQ, same, AllReleased()),
    # ---------------------------------------------------------------- Art 9-10: the catalog
    row(
        "art9-item-not-in-catalog-withheld",
        "9",
        OPEN_INQ,
        asking(REG, UNKNOWN),
        ItemOut(UNKNOWN, R.NOT_IN_CATALOG),
        RecordIn(rid(REG)),
    ),
    row(
        "art9-only-uncatalogued-item-asked-refused",
        "9",
        OPEN_INQ,
        asking(UNKNOWN),
        Refused(R.NOT_IN_CATALOG),
    ),
    row(
        "art9-self-uncatalogued-item-asked-refused",
        "9",
        SELF_INQ,
        asking(UNKNOWN),
        Refused(R.NOT_IN_CATALOG),
    ),
    row(
        "art9-record-of-uncatalogued-item-never-leaves",
        "9",
        SELF_INQ,
        adding(RecordState("rec-stray", UNKNOWN, NOW - DAY)),
        NeverLeaves("rec-stray"),
        OutcomeIs(Outcome.RELEASED),
    ),
    row(
        "art9-disclosure-period-ended",
        "9",
        OPEN_INQ,
        record(REG, occurred_at=NOW - 3650 * DAY),
        RecordOut(rid(REG), R.DISCLOSURE_PERIOD_ENDED),
        RecordIn(rid(LST)),
    ),
    row(
        "art9-disclosure-period-last-instant",
        "9",
        OPEN_INQ,
        record(REG, occurred_at=NOW - 3650 * DAY + TICK),
        AllReleased(),
    ),
    row(
        "art9-disclosure-period-ended-government",
        "9",
        GOV_SHARE,
        record(JUD, occurred_at=NOW - 1825 * DAY),
        RecordOut(rid(JUD), R.DISCLOSURE_PERIOD_ENDED),
    ),
    row(
        "art9-disclosure-period-ended-authorized",
        "9",
        AUTH_INQ,
        both(record(INC, occurred_at=NOW - 365 * DAY), terms(data_from=NOW - 400 * DAY)),
        RecordOut(rid(INC), R.DISCLOSURE_PERIOD_ENDED),
    ),
    row(
        "art9-self-sees-own-records-past-disclosure-period",
        "9",
        SELF_INQ,
        record(INC, occurred_at=NOW - 4000 * DAY),
        RecordIn(rid(INC)),
    ),
    row(
        "art9-default-request-withholds-items-not-on-channel",
        "9",
        OPEN_INQ,
        asking(),
        RecordIn(rid(REG)),
        RecordIn(rid(LST)),
        ItemOut(PUN, R.NOT_DISCLOSABLE_ON_CHANNEL),
        ItemOut(JUD, R.NOT_DISCLOSABLE_ON_CHANNEL),
        ItemOut(VOL, R.NOT_DISCLOSABLE_ON_CHANNEL),
        OutcomeIs(Outcome.PARTIAL),
    ),
    row(
        "art9-duplicate-item-asked-once",
        "9",
        OPEN_INQ,
        asking(REG, REG, LST),
        AllReleased(),
    ),
    # ---------------------------------------------------------------- Art 16: written consent
    row(
        "art16-written-consent-item-named-one-by-one-released",
        "16",
        AUTH_INQ,
        same,
        RecordIn(rid(INC)),
    ),
    row(
        "art16-written-consent-item-by-category-withheld",
        "16",
        AUTH_INQ,
        terms(item_codes=frozenset(), categories=frozenset(Category)),
        ItemOut(INC, R.ITEM_NOT_CONSENTED),
        RecordIn(rid(PUN)),
    ),
    row(
        "art16-written-consent-item-alone-by-category-refused",
        "16",
        AUTH_INQ,
        both(asking(INC), terms(item_codes=frozenset(), categories=frozenset({Category.MARKET}))),
        Refused(R.ITEM_NOT_CONSENTED),
    ),
    row(
        "art16-ordinary-item-by-category-released",
        "16",
        AUTH_INQ,
        terms(
            item_codes=frozenset({INC}), categories=frozenset({Category.ADMINISTRATIVE_PUNISHMENT})
        ),
        RecordIn(rid(PUN)),
    ),
    row(
        "art16-ordinary-item-named-released",
        "16",
        AUTH_INQ,
        terms(item_codes=frozenset({INC, PUN}), categories=frozenset()),
        AllReleased(),
    ),
    row(
        "art16-written-consent-item-never-open",
        "16",
        OPEN_INQ,
        asking(REG, INC),
        ItemOut(INC, R.NOT_DISCLOSABLE_ON_CHANNEL),
    ),
    # ---------------------------------------------------------------- Art 17-18: levels per channel
    row(
        "art17-open-channel-authorized-item-withheld",
        "17",
        OPEN_INQ,
        asking(REG, PUN),
        ItemOut(PUN, R.NOT_DISCLOSABLE_ON_CHANNEL),
        RecordIn(rid(REG)),
        OutcomeIs(Outcome.PARTIAL),
    ),
    row(
        "art17-open-channel-government-item-withheld",
        "17",
        OPEN_INQ,
        asking(REG, JUD),
        ItemOut(JUD, R.NOT_DISCLOSABLE_ON_CHANNEL),
    ),
    row(
        "art17-open-channel-self-item-withheld",
        "17",
        OPEN_INQ,
        asking(REG, VOL),
        ItemOut(VOL, R.NOT_DISCLOSABLE_ON_CHANNEL),
    ),
    row(
        "art17-open-channel-only-non-open-asked-refused",
        "17",
        OPEN_INQ,
        asking(PUN, JUD),
        Refused(R.NOT_DISCLOSABLE_ON_CHANNEL),
    ),
    row(
        "art17p2-natural-person-not-open",
        "17.2",
        OPEN_INQ,
        both(subject(NP, PERSON), asking(REG)),
        Refused(R.NOT_DISCLOSABLE_ON_CHANNEL),
    ),
    row(
        "art17p2-natural-person-open-by-state-provision",
        "17.2",
        OPEN_INQ,
        both(subject(NP, PERSON), asking(REG, LST)),
        RecordIn(rid(LST)),
        ItemOut(REG, R.NOT_DISCLOSABLE_ON_CHANNEL),
    ),
    # PIPL Art 31: a natural person under 14 on the gateway's (Beijing) date
    row(
        "art17p2-minor-open-item-refused",
        "17.2",
        OPEN_INQ,
        both(subject(NP, PERSON), asking(LST), change(subject_born=BORN_13)),
        Refused(R.MINOR_NOT_OPEN),
    ),
    row(
        "art17p2-minor-organisation-items-unaffected",
        "17.2",
        OPEN_INQ,
        change(subject_born=BORN_13),  # the rule is a natural person's: never an organisation's
        AllReleased(),
    ),
    row(
        "art17p2-minor-fourteen-today-released",
        "17.2",
        OPEN_INQ,
        both(subject(NP, PERSON), asking(REG, LST), change(subject_born=BORN_14_TODAY)),
        RecordIn(rid(LST)),
    ),
    row(
        "art17p3-organisation-level-from-catalog",
        "17.3",
        OPEN_INQ,
        subject(OO, COMPANY_2),
        AllReleased(),
    ),
    row(
        "art18-open-item-on-authorized-channel-needs-no-consent-coverage",
        "18",
        AUTH_INQ,
        asking(PUN, LST),
        AllReleased(),
    ),
    row(
        "art17-authorized-channel-government-item-withheld",
        "17",
        AUTH_INQ,
        asking(PUN, JUD),
        ItemOut(JUD, R.NOT_DISCLOSABLE_ON_CHANNEL),
        RecordIn(rid(PUN)),
    ),
    row(
        "art17-authorized-channel-self-item-withheld",
        "17",
        AUTH_INQ,
        asking(PUN, VOL),
        ItemOut(VOL, R.NOT_DISCLOSABLE_ON_CHANNEL),
    ),
    row(
        "art17-government-channel-open-and-authorized-items",
        "17",
        GOV_SHARE,
        asking(REG, PUN, JUD),
        AllReleased(),
    ),
    row(
        "art17-government-channel-self-item-withheld",
        "17",
        GOV_SHARE,
        asking(JUD, VOL),
        ItemOut(VOL, R.NOT_DISCLOSABLE_ON_CHANNEL),
        RecordIn(rid(JUD)),
    ),
    row(
        "art17-self-channel-self-item-released",
        "17",
        SELF_INQ,
        asking(VOL),
        AllReleased(),
    ),
    row(
        "art17-self-channel-needs-no-agreement-or-consent",
        "17",
        SELF_INQ,
        change(agreement=None, consent=None, purpose=""),
        AllReleased(),
    ),
    # ---------------------------------------------------------------- Art 19: written consent
    row(
        "art19-consent-required",
        "19",
        AUTH_INQ,
        change(consent=None),
        Refused(R.CONSENT_REQUIRED),
    ),
    row(
        "art19-consent-other-grantee",
        "19",
        AUTH_INQ,
        terms(grantee="agency-b"),
        Refused(R.CONSENT_OTHER_GRANTEE),
    ),
    row(
        "art19-consent-other-subject",
        "19",
        AUTH_INQ,
        consent(subject_id=COMPANY),
        Refused(R.CONSENT_OTHER_SUBJECT),
    ),
    row(
        "art19-consent-revoked",
        "19",
        AUTH_INQ,
        consent(status=ConsentStatus.REVOKED),
        Refused(R.CONSENT_REVOKED),
    ),
    row(
        "art19-consent-paused",
        "19",
        AUTH_INQ,
        consent(status=ConsentStatus.PAUSED),
        Refused(R.CONSENT_PAUSED),
    ),
    row(
        "art19-consent-expired",
        "19",
        AUTH_INQ,
        consent(status=ConsentStatus.EXPIRED),
        Refused(R.CONSENT_EXPIRED),
    ),
    row(
        "art19-consent-window-ended",
        "19",
        AUTH_INQ,
        terms(valid_until=NOW),
        Refused(R.CONSENT_EXPIRED),
    ),
    row(
        "art19-consent-window-last-instant",
        "19",
        AUTH_INQ,
        terms(valid_until=NOW + TICK),
        AllReleased(),
    ),
    row(
        "art19-consent-not-yet-valid",
        "19",
        AUTH_INQ,
        terms(valid_from=NOW + TICK),
        Refused(R.CONSENT_NOT_YET_VALID),
    ),
    row(
        "art19-consent-exhausted",
        "19",
        AUTH_INQ,
        consent(status=ConsentStatus.EXHAUSTED),
        Refused(R.CONSENT_EXHAUSTED),
    ),
    row(
        "art19-consent-uses-spent",
        "19",
        AUTH_INQ,
        consent(uses=3),
        Refused(R.CONSENT_EXHAUSTED),
    ),
    row("art19-consent-last-use", "19", AUTH_INQ, consent(uses=2), AllReleased()),
    row(
        "art19-consent-revoked-beats-other-checks",
        "19",
        AUTH_INQ,
        both(consent(status=ConsentStatus.REVOKED, uses=3), terms(purpose_code="LEASE")),
        Refused(R.CONSENT_REVOKED),
    ),
    row(
        "art19-used-in-the-agreed-manner-purpose",
        "19",
        AUTH_INQ,
        terms(purpose_code="DUE_DILIGENCE"),
        Refused(R.PURPOSE_NOT_CONSENTED),
    ),
    row(
        "art19-item-not-consented-withheld",
        "19",
        AUTH_INQ,
        terms(categories=frozenset()),
        ItemOut(PUN, R.ITEM_NOT_CONSENTED),
        RecordIn(rid(INC)),
    ),
    row(
        "art19-nothing-asked-consented-refused",
        "19",
        AUTH_INQ,
        both(asking(PUN), terms(categories=frozenset({Category.JUDICIAL}))),
        Refused(R.ITEM_NOT_CONSENTED),
    ),
    row(
        "art19-consent-data-range-before",
        "19",
        AUTH_INQ,
        record(PUN, occurred_at=NOW - 365 * DAY - TICK),
        RecordOut(rid(PUN), R.OUTSIDE_CONSENT_DATA_RANGE),
        RecordIn(rid(INC)),
    ),
    row(
        "art19-consent-data-range-start-inclusive",
        "19",
        AUTH_INQ,
        record(PUN, occurred_at=NOW - 365 * DAY),
        AllReleased(),
    ),
    row(
        "art19-consent-data-range-end-exclusive",
        "19",
        AUTH_INQ,
        terms(data_to=NOW - 30 * DAY),
        RecordOut(rid(PUN), R.OUTSIDE_CONSENT_DATA_RANGE),
        RecordOut(rid(INC), R.OUTSIDE_CONSENT_DATA_RANGE),
        OutcomeIs(Outcome.WITHHELD),
    ),
    row(
        "art19-consent-data-range-after",
        "19",
        AUTH_INQ,
        terms(data_to=NOW - 60 * DAY),
        RecordOut(rid(INC), R.OUTSIDE_CONSENT_DATA_RANGE),
    ),
    row(
        "art19-open-channel-needs-no-consent",
        "19",
        OPEN_INQ,
        change(consent=dataclasses.replace(CONSENT, status=ConsentStatus.REVOKED)),
        AllReleased(),
    ),
    *_public_only_rows(GOV_SHARE),
    row(
        "art16-written-consent-public-item-named-one-by-one-released-authorized",
        "16",
        AUTH_INQ,
        both(asking(TAX, PUN), terms(item_codes=frozenset({TAX}))),
        AllReleased(),
    ),
    row(
        "art16-self-sees-own-written-consent-and-market-items",
        "16",
        SELF_INQ,
        asking(TAX, MKT, INC),
        AllReleased(),
    ),
    # ---------------------------------------------------------------- Art 20: agreements
    *_caller_rows(),
    *(r for ch in EXCHANGE for r in (*_public_only_rows(ch), *_exchange_rows(ch))),
    row(
        "art20-self-channel-caller-kind-refused",
        "20",
        SELF_INQ,
        caller(PK.CREDIT_AGENCY),
        Refused(R.CALLER_KIND_NOT_ALLOWED),
    ),
    row(
        "art20-self-channel-other-caller-refused",
        "20",
        SELF_INQ,
        change(caller_id=COMPANY),
        Refused(R.CALLER_KIND_NOT_ALLOWED),
    ),
    *[
        row(
            f"art20-agreement-required-{ch.value}",
            "20.2" if ch is AUTH_INQ else "20.1" if ch is GOV_SHARE else "20.3",
            ch,
            change(agreement=None),
            Refused(R.AGREEMENT_REQUIRED),
        )
        for ch in (OPEN_INQ, AUTH_INQ, GOV_SHARE, *EXCHANGE)
    ],
    row(
        "art20p2-agreement-other-party",
        "20.2",
        AUTH_INQ,
        agreement(counterparty="agency-b"),
        Refused(R.AGREEMENT_OTHER_PARTY),
    ),
    row(
        "art20p2-agreement-suspended",
        "20.2",
        AUTH_INQ,
        agreement_state(status=AgreementStatus.SUSPENDED),
        Refused(R.AGREEMENT_SUSPENDED),
    ),
    row(
        "art20p1-agreement-suspended",
        "20.1",
        GOV_SHARE,
        agreement_state(status=AgreementStatus.SUSPENDED),
        Refused(R.AGREEMENT_SUSPENDED),
    ),
    row(
        "art20p2-agreement-not-yet-valid",
        "20.2",
        AUTH_INQ,
        agreement(valid_from=NOW + TICK),
        Refused(R.AGREEMENT_NOT_YET_VALID),
    ),
    row(
        "art20p2-agreement-first-instant",
        "20.2",
        AUTH_INQ,
        agreement(valid_from=NOW),
        AllReleased(),
    ),
    row(
        "art20p2-agreement-expired",
        "20.2",
        AUTH_INQ,
        agreement(valid_until=NOW),
        Refused(R.AGREEMENT_EXPIRED),
    ),
    row(
        "art20p2-agreement-last-instant",
        "20.2",
        AUTH_INQ,
        agreement(valid_until=NOW + TICK),
        AllReleased(),
    ),
    row(
        "art20p2-agreement-checked-before-consent",
        "20.2",
        AUTH_INQ,
        both(agreement_state(status=AgreementStatus.SUSPENDED), change(consent=None)),
        Refused(R.AGREEMENT_SUSPENDED),
    ),
    # ---------------------------------------------------------------- Art 36: the agreed scope
    row(
        "art36-operation-not-agreed-inquiry",
        "36",
        AUTH_INQ,
        agreement(operations=frozenset({Operation.BULK_PULL, Operation.GOVERNMENT_SHARING})),
        Refused(R.OPERATION_NOT_AGREED),
    ),
    row(
        "art36-operation-not-agreed-government-sharing",
        "36",
        GOV_SHARE,
        agreement(operations=frozenset({Operation.INQUIRY})),
        Refused(R.OPERATION_NOT_AGREED),
    ),
    row(
        "art36-purpose-not-agreed",
        "36",
        AUTH_INQ,
        agreement(purposes=frozenset({"DUE_DILIGENCE"})),
        Refused(R.PURPOSE_NOT_AGREED),
    ),
    row(
        "art36-subject-kind-not-agreed",
        "36",
        OPEN_INQ,
        agreement(subject_kinds=frozenset({NP, OO})),
        Refused(R.SUBJECT_KIND_NOT_AGREED),
    ),
    row(
        "art36-item-not-agreed",
        "36",
        AUTH_INQ,
        agreement(categories=frozenset({Category.MARKET})),
        ItemOut(PUN, R.ITEM_NOT_AGREED),
        RecordIn(rid(INC)),
    ),
    row(
        "art36-item-agreed-by-code",
        "36",
        AUTH_INQ,
        agreement(categories=frozenset(), items=frozenset({PUN, INC})),
        AllReleased(),
    ),
    row(
        "art36-only-unagreed-item-asked-refused",
        "36",
        GOV_SHARE,
        both(asking(JUD), agreement(categories=frozenset({Category.REGISTRATION}))),
        Refused(R.ITEM_NOT_AGREED),
    ),
    row(
        "art36-level-not-agreed",
        "36",
        AUTH_INQ,
        both(asking(PUN, LST), agreement(levels=frozenset({OPEN}))),
        ItemOut(PUN, R.LEVEL_NOT_AGREED),
        RecordIn(rid(LST)),
    ),
    row(
        "art36-government-level-not-agreed",
        "36",
        GOV_SHARE,
        agreement(levels=frozenset({OPEN, AUTH})),
        ItemOut(JUD, R.LEVEL_NOT_AGREED),
        RecordIn(rid(PUN)),
    ),
    row(
        "art36-default-request-skips-unagreed-items",
        "36",
        GOV_SHARE,
        both(asking(), agreement(categories=frozenset({Category.JUDICIAL}))),
        RecordIn(rid(JUD)),
        NeverLeaves(rid(PUN)),
        NeverLeaves(rid(REG)),
        OutcomeIs(Outcome.RELEASED),
    ),
    row(
        "art36-agreement-covers-nothing-refused",
        "36",
        OPEN_INQ,
        both(asking(), agreement(categories=frozenset(), items=frozenset({UNKNOWN}))),
        Refused(R.NOTHING_REQUESTABLE),
    ),
    row(
        "art36-default-request-nothing-agreed-on-channel-withheld",
        "36",
        OPEN_INQ,
        both(asking(), agreement(categories=frozenset({Category.JUDICIAL}))),
        ItemOut(JUD, R.NOT_DISCLOSABLE_ON_CHANNEL),
        NeverLeaves(rid(REG)),
        OutcomeIs(Outcome.WITHHELD),
    ),
    row(
        "art36-calls-quota-used-up",
        "36",
        AUTH_INQ,
        agreement_state(calls_today=100),
        Refused(R.QUOTA_CALLS_EXHAUSTED),
    ),
    row(
        "art36-calls-quota-last-call",
        "36",
        AUTH_INQ,
        agreement_state(calls_today=99),
        AllReleased(),
    ),
    row(
        "art36-records-quota-runs-out-mid-request",
        "36",
        OPEN_INQ,
        agreement_state(records_today=999),
        RecordIn(rid(LST)),  # LIST.DISCIPLINE sorts first
        RecordOut(rid(REG), R.QUOTA_RECORDS_EXHAUSTED),
        OutcomeIs(Outcome.PARTIAL),
    ),
    row(
        "art36-records-quota-used-up",
        "36",
        GOV_SHARE,
        agreement_state(records_today=1000),
        RecordOut(rid(JUD), R.QUOTA_RECORDS_EXHAUSTED),
        RecordOut(rid(PUN), R.QUOTA_RECORDS_EXHAUSTED),
        OutcomeIs(Outcome.WITHHELD),
    ),
    row(
        "art36-records-quota-overdrawn",
        "36",
        AUTH_INQ,
        agreement_state(records_today=5000),
        RecordOut(rid(PUN), R.QUOTA_RECORDS_EXHAUSTED),
        OutcomeIs(Outcome.WITHHELD),
    ),
    row(
        "art36-withheld-records-do-not-use-the-records-quota",
        "36",
        OPEN_INQ,
        both(
            agreement_state(records_today=999),
            record(LST, objection_filed_at=NOW - FIFTEEN_DAYS),
        ),
        RecordOut(rid(LST), R.OBJECTION_SUSPENDED),
        RecordIn(rid(REG)),
    ),
    row(
        "art36-self-channel-has-no-quota",
        "36",
        SELF_INQ,
        adding(*(RecordState(f"extra-{i}", PUN, NOW - i * DAY) for i in range(1, 50))),
        AllReleased(),
    ),
    # ---------------------------------------------------------------- Art 29: objections
    row(
        "art29-objection-labelled-at-once",
        "29",
        OPEN_INQ,
        record(REG, objection_filed_at=NOW),
        RecordIn(rid(REG), OBJECTION),
        RecordIn(rid(LST)),
        OutcomeIs(Outcome.RELEASED),
    ),
    row(
        "art29-objection-labelled-within-15-days",
        "29",
        AUTH_INQ,
        record(PUN, objection_filed_at=NOW - FIFTEEN_DAYS + TICK),
        RecordIn(rid(PUN), OBJECTION),
    ),
    row(
        "art29-objection-suspended-after-15-days",
        "29",
        AUTH_INQ,
        record(PUN, objection_filed_at=NOW - FIFTEEN_DAYS),
        RecordOut(rid(PUN), R.OBJECTION_SUSPENDED),
        RecordIn(rid(INC)),
        OutcomeIs(Outcome.PARTIAL),
    ),
    row(
        "art29-objection-suspended-long-after",
        "29",
        OPEN_INQ,
        record(LST, objection_filed_at=NOW - 200 * DAY),
        RecordOut(rid(LST), R.OBJECTION_SUSPENDED),
    ),
    row(
        "art29-objection-suspended-for-government-sharing",
        "29",
        GOV_SHARE,
        record(JUD, objection_filed_at=NOW - 16 * DAY),
        RecordOut(rid(JUD), R.OBJECTION_SUSPENDED),
    ),
    row(
        "art29-objection-labelled-for-government-sharing",
        "29",
        GOV_SHARE,
        record(JUD, objection_filed_at=NOW - 14 * DAY),
        RecordIn(rid(JUD), OBJECTION),
    ),
    row(
        "art29-self-sees-own-suspended-record-labelled",
        "29",
        SELF_INQ,
        record(PUN, objection_filed_at=NOW - 200 * DAY),
        RecordIn(rid(PUN), OBJECTION),
    ),
    # ---------------------------------------------------------------- Art 30-31: out of service
    row(
        "art30-restored-record-not-in-service",
        "30",
        OPEN_INQ,
        record(LST, in_service=False),
        RecordOut(rid(LST), R.NOT_IN_SERVICE),
        RecordIn(rid(REG)),
    ),
    row(
        "art30-restored-record-not-in-service-authorized",
        "30",
        AUTH_INQ,
        record(PUN, in_service=False),
        RecordOut(rid(PUN), R.NOT_IN_SERVICE),
    ),
    row(
        "art30-restored-record-not-in-service-government",
        "30",
        GOV_SHARE,
        record(JUD, in_service=False, objection_filed_at=NOW),
        RecordOut(rid(JUD), R.NOT_IN_SERVICE),
    ),
    row(
        "art31-deleted-commendation-not-shown-even-to-self",
        "31",
        SELF_INQ,
        record(VOL, in_service=False),
        RecordOut(rid(VOL), R.NOT_IN_SERVICE),
        OutcomeIs(Outcome.PARTIAL),
    ),
]

ROW_PARAMS = [pytest.param(r, id=r.id) for r in ROWS]


@pytest.mark.parametrize("r", ROW_PARAMS)
def test_policy_table(r: Row) -> None:
    request = r.mutate(baseline(r.channel))
    assert request.channel is r.channel
    decision = decide(request, CATALOG, NOW)
    for expectation in r.expect:
        expectation.check(decision, request)
    _check_invariants(request, decision)


def test_rows_are_unique_and_name_their_article() -> None:
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))
    for r in ROWS:
        number, _, para = r.article.partition(".")
        assert re.match(rf"art{number}(p{para})?-", r.id), r.id


def test_every_disclosure_article_is_covered() -> None:
    articles = {r.article for r in ROWS}
    assert {"20.1", "20.2", "20.3", "17.2", "17.3"} <= articles
    assert {a.split(".")[0] for a in articles} >= {
        "9", "16", "17", "18", "19", "20", "29", "30", "31", "36"
    }  # fmt: skip
    assert {r.channel for r in ROWS} == set(Channel)


@pytest.mark.parametrize("channel", list(Channel), ids=lambda c: c.value)
def test_baselines_are_released_in_full(channel: Channel) -> None:
    request = baseline(channel)
    decision = decide(request, CATALOG, NOW)
    assert decision.refusal is None
    assert decision.outcome is Outcome.RELEASED
    assert decision.releases
    assert decision.reasons == ()
    decision.raise_if_refused()


@pytest.mark.parametrize("channel", list(Channel), ids=lambda c: c.value)
def test_only_the_authorized_channel_uses_the_consent(channel: Channel) -> None:
    with_consent = dataclasses.replace(baseline(channel), consent=CONSENT)
    uses = channel is AUTH_INQ
    assert decide(baseline(channel), CATALOG, NOW).uses_consent is uses
    assert decide(with_consent, CATALOG, NOW).uses_consent is uses


def test_releases_are_in_a_stable_order() -> None:
    extra = (
        RecordState("b", PUN, NOW - 2 * DAY),
        RecordState("a", PUN, NOW - 2 * DAY),
        RecordState("z", PUN, NOW - 9 * DAY),
    )
    decision = decide(adding(*extra)(baseline(SELF_INQ)), CATALOG, NOW)
    pun = [x.record_id for x in decision.releases if x.item_code == PUN]
    assert pun == [rid(PUN), "z", "a", "b"]  # by time, then id
    assert [x.item_code for x in decision.releases] == sorted(
        x.item_code for x in decision.releases
    )


def test_objection_period_is_15_days() -> None:
    assert timedelta(days=15) == OBJECTION_RESPONSE_PERIOD  # Art 29 para 2


# ------------------------------------------------------------------ Decision


def test_decision_outcomes() -> None:
    released = (RecordRelease("r1", REG),)
    assert Decision(R.CONSENT_REVOKED).outcome is Outcome.REFUSED
    assert Decision(
        R.NOT_IN_CATALOG, withheld_items=(ItemWithheld(UNKNOWN, R.NOT_IN_CATALOG),)
    ).outcome is (Outcome.REFUSED)
    assert Decision(None).outcome is Outcome.WITHHELD
    assert (
        Decision(None, withheld_records=(RecordWithheld("r1", REG, R.NOT_IN_SERVICE),)).outcome
        is Outcome.WITHHELD
    )
    assert Decision(None, released).outcome is Outcome.RELEASED
    assert (
        Decision(None, released, withheld_items=(ItemWithheld(PUN, R.ITEM_NOT_AGREED),)).outcome
        is Outcome.PARTIAL
    )
    assert (
        Decision(
            None, released, withheld_records=(RecordWithheld("r2", REG, R.NOT_IN_SERVICE),)
        ).outcome
        is Outcome.PARTIAL
    )


def test_decision_reasons_are_named_once_in_order() -> None:
    decision = Decision(
        None,
        (RecordRelease("r1", REG),),
        withheld_records=(
            RecordWithheld("r2", REG, R.OBJECTION_SUSPENDED),
            RecordWithheld("r3", REG, R.NOT_IN_SERVICE),
            RecordWithheld("r4", REG, R.OBJECTION_SUSPENDED),
        ),
        withheld_items=(
            ItemWithheld(PUN, R.ITEM_NOT_AGREED),
            ItemWithheld(JUD, R.NOT_DISCLOSABLE_ON_CHANNEL),
        ),
    )
    assert decision.reasons == (
        "ITEM_NOT_AGREED",
        "NOT_DISCLOSABLE_ON_CHANNEL",
        "OBJECTION_SUSPENDED",
        "NOT_IN_SERVICE",
    )
    refused = Decision(R.NOT_IN_CATALOG, withheld_items=(ItemWithheld(UNKNOWN, R.NOT_IN_CATALOG),))
    assert refused.reasons == ("NOT_IN_CATALOG",)
    assert Decision(R.QUOTA_CALLS_EXHAUSTED).reasons == ("QUOTA_CALLS_EXHAUSTED",)
    assert Decision(None).reasons == ()


def test_raise_if_refused_passes_a_release() -> None:
    Decision(None, (RecordRelease("r1", REG),)).raise_if_refused()
    Decision(None).raise_if_refused()


def test_raise_if_refused_quota_is_resource_exhausted() -> None:
    with pytest.raises(ResourceExhausted) as raised:
        Decision(R.QUOTA_CALLS_EXHAUSTED).raise_if_refused()
    assert raised.value.reason == "QUOTA_CALLS_EXHAUSTED"


@pytest.mark.parametrize(
    "reason", [r for r in Reason if r is not R.QUOTA_CALLS_EXHAUSTED], ids=lambda r: r.value
)
def test_raise_if_refused_is_permission_denied(reason: Reason) -> None:
    with pytest.raises(PermissionDenied) as raised:
        Decision(reason).raise_if_refused()
    assert raised.value.reason == reason.value
    assert not isinstance(raised.value, ResourceExhausted)


@pytest.mark.parametrize("r", ROW_PARAMS)
def test_policy_table_guard(r: Row) -> None:
    """The guard agrees with the table: refusals raise, everything else passes."""
    decision = decide(r.mutate(baseline(r.channel)), CATALOG, NOW)
    refused = [e for e in r.expect if isinstance(e, Refused)]
    if not refused:
        decision.raise_if_refused()
        return
    expected = (
        ResourceExhausted if refused[0].reason is R.QUOTA_CALLS_EXHAUSTED else PermissionDenied
    )
    with pytest.raises(expected) as raised:
        decision.raise_if_refused()
    assert raised.value.reason == refused[0].reason.value


# ------------------------------------------------------------------ properties


def _check_invariants(request: ReleaseRequest, decision: Decision) -> None:
    """(a), (b) and (d): what holds for every decision."""
    by_id = {x.id: x for x in request.records}
    released = [x.record_id for x in decision.releases]
    withheld = [x.record_id for x in decision.withheld_records]
    # (d) releases and withheld records come from the request, each once, never both
    assert set(released) <= set(by_id)
    assert set(withheld) <= set(by_id)
    assert len(released) == len(set(released))
    assert len(withheld) == len(set(withheld))
    assert not set(released) & set(withheld)
    pairs = [(x.record_id, x.item_code) for x in decision.releases]
    pairs += [(x.record_id, x.item_code) for x in decision.withheld_records]
    assert all(by_id[record_id].item_code == code for record_id, code in pairs)
    # (b) a refusal releases nothing
    if decision.refusal is not None:
        assert decision.releases == ()
        assert decision.withheld_records == ()
        assert decision.uses_consent is False
        return
    # (a) nothing leaves that the rules do not allow
    for release in decision.releases:
        _check_release_allowed(request, by_id[release.record_id], release)


def _check_release_allowed(
    request: ReleaseRequest, rec: RecordState, release: RecordRelease
) -> None:
    item = CATALOG.item(rec.item_code)
    assert item is not None, "released a record whose item is not in the catalog"
    level = item.level_for(request.subject_kind)
    assert level in ALLOWED_LEVELS[request.channel], "released at a level the channel may not see"
    assert rec.in_service
    if (
        request.channel is OPEN_INQ
        and request.subject_kind is NP
        and is_minor(request.subject_born, NOW)
    ):
        assert item.open_to_minors_by_state_provision, "opened a minor's information"
    if request.requested_items:
        assert rec.item_code in request.requested_items
    assert (LABEL_OBJECTION_PENDING in release.labels) is (rec.objection_filed_at is not None)
    if request.channel is SELF_INQ:
        assert request.caller_kind is None
        assert request.caller_id == request.subject_id
        return
    assert request.caller_kind in ALLOWED_CALLERS[request.channel]
    if request.channel in PUBLIC_ONLY:  # Art 20 para 1 and 3: public credit information only
        assert item.info_kind is InfoKind.PUBLIC, "shared market information"
        assert item.art16 is not Art16Class.WRITTEN_CONSENT, "shared a written-consent item"
    state = request.agreement
    assert state is not None
    a = state.agreement
    assert a.covers_item(item), "released an item the agreement does not cover"
    assert level in a.levels, "released at a level the agreement does not allow"
    assert state.status is AgreementStatus.ACTIVE
    assert a.counterparty == request.caller_id
    assert a.valid_from <= NOW < a.valid_until
    assert OPERATION_OF[request.channel] in a.operations
    assert request.purpose in a.purposes
    assert request.subject_kind in a.subject_kinds
    if request.channel not in UNCOUNTED:
        assert state.calls_today < a.quotas.calls_per_day
    default_end = rec.occurred_at + timedelta(days=item.disclosure_period_days)
    assert (rec.disclosure_until or default_end) > NOW, "released past its disclosure period"
    if rec.objection_filed_at is not None:
        assert rec.objection_filed_at + FIFTEEN_DAYS > NOW
    if request.channel is AUTH_INQ:
        c = request.consent
        assert c is not None
        assert c.terms.grantee == request.caller_id
        assert c.subject_id == request.subject_id
        assert c.effective_status(NOW) is ConsentStatus.ACTIVE
        assert c.terms.valid_from <= NOW
        assert c.terms.purpose_code == request.purpose
        assert level is OPEN or c.terms.covers(item), "released a non-open item not consented"
        assert c.terms.data_from <= rec.occurred_at < c.terms.data_to


def _subsets(values: Iterable[Any]) -> st.SearchStrategy[frozenset[Any]]:
    return st.frozensets(st.sampled_from(list(values)))


_OFFSET = st.integers(min_value=-400, max_value=40).map(lambda d: NOW + d * DAY)
_CALLER_IDS = st.sampled_from(["agency-a", "agency-a", "agency-b", "platform-n", PERSON])
_PURPOSES = st.sampled_from(["LOAN", "LEASE"])

_AGREEMENTS = st.builds(
    AgreementState,
    agreement=st.builds(
        lambda start, days, **kw: Agreement(valid_from=start, valid_until=start + days * DAY, **kw),
        start=_OFFSET,
        days=st.integers(1, 800),
        id=st.just("agr"),
        counterparty=_CALLER_IDS,
        operations=_subsets(Operation),
        items=_subsets([*CODES, UNKNOWN]),
        categories=_subsets(Category),
        purposes=_subsets(["LOAN", "LEASE"]),
        levels=_subsets(DisclosureLevel),
        subject_kinds=_subsets(SubjectKind),
        quotas=st.builds(Quotas, st.integers(1, 3), st.integers(1, 6)),
    ),
    status=st.sampled_from(AgreementStatus),
    calls_today=st.integers(0, 3),
    records_today=st.integers(0, 6),
)
_TERMS = st.builds(
    lambda data_from, data_days, valid_from, valid_days, **kw: ConsentTerms(
        data_from=data_from,
        data_to=data_from + data_days * DAY,
        valid_from=valid_from,
        valid_until=valid_from + valid_days * DAY,
        **kw,
    ),
    data_from=_OFFSET,
    data_days=st.integers(1, 500),
    valid_from=_OFFSET,
    valid_days=st.integers(1, 500),
    grantee=_CALLER_IDS,
    purpose_code=_PURPOSES,
    purpose_text=st.just("text"),
    item_codes=_subsets([*CODES, UNKNOWN]),
    categories=_subsets(Category),
    max_uses=st.integers(1, 3),
)
_CONSENTS = st.builds(
    Consent,
    id=st.just("cns"),
    subject_id=st.sampled_from([PERSON, COMPANY]),
    terms=_TERMS,
    status=st.sampled_from(ConsentStatus),
    uses=st.integers(0, 3),
    granted_at=st.just(NOW),
    status_changed_at=st.just(NOW),
    evidence=st.just(""),
)
_SOMETIMES = st.integers(0, 2).map(lambda n: n == 0)
_RECORD_SPECS = st.lists(
    st.tuples(
        st.sampled_from([*CODES, UNKNOWN]),
        st.integers(min_value=-2000, max_value=1).map(lambda d: NOW + d * DAY),
        _SOMETIMES.map(lambda out_of_service: not out_of_service),
        _SOMETIMES.flatmap(
            lambda objected: (
                st.integers(min_value=-30, max_value=0).map(lambda d: NOW + d * DAY)
                if objected
                else st.none()
            )
        ),
        # its stored end of disclosure (its severity's period, or a restoration's), or none
        st.none() | st.integers(min_value=-400, max_value=400).map(lambda d: NOW + d * DAY),
    ),
    max_size=8,
)
_RECORDS = _RECORD_SPECS.map(
    lambda specs: tuple(
        RecordState(
            f"r{i}", code, at, in_service=live, objection_filed_at=objection, disclosure_until=end
        )
        for i, (code, at, live, objection, end) in enumerate(specs)
    )
)


@st.composite
def _requests(draw: st.DrawFn) -> ReleaseRequest:
    channel = draw(st.sampled_from(Channel))
    subject_kind, subject_id = draw(st.sampled_from([(NP, PERSON), (LP, COMPANY), (OO, COMPANY_2)]))
    if channel is SELF_INQ and draw(st.booleans()):
        caller_id, caller_kind = subject_id, None
    else:
        caller_id = draw(_CALLER_IDS)
        caller_kind = draw(st.none() | st.sampled_from(PK))
    return ReleaseRequest(
        channel=channel,
        caller_id=caller_id,
        caller_kind=caller_kind,
        subject_id=subject_id,
        subject_kind=subject_kind,
        purpose=draw(_PURPOSES),
        requested_items=tuple(draw(st.lists(st.sampled_from([*CODES, UNKNOWN]), max_size=3))),
        agreement=draw(st.none() | _AGREEMENTS),
        consent=draw(st.none() | _CONSENTS),
        records=draw(_RECORDS),
        subject_born=draw(st.none() | _BIRTH_DATES) if subject_kind is NP else None,
    )


_CHANNELS = st.sampled_from(Channel)


@st.composite
def _allowed_requests(
    draw: st.DrawFn, channels: st.SearchStrategy[Channel] = _CHANNELS
) -> ReleaseRequest:
    """A baseline with random damage: most of these are allowed and release something."""
    channel = draw(channels)
    request = baseline(channel)
    if draw(_SOMETIMES):
        request = dataclasses.replace(
            request,
            requested_items=tuple(draw(st.lists(st.sampled_from([*CODES, UNKNOWN]), max_size=4))),
        )
    if request.agreement is not None and draw(_SOMETIMES):
        a = request.agreement.agreement
        a = dataclasses.replace(
            a,
            items=draw(_subsets(CODES)),
            categories=draw(_subsets(Category)),
            levels=draw(_subsets(DisclosureLevel)),
            quotas=Quotas(a.quotas.calls_per_day, draw(st.integers(1, 30))),
        )
        request = dataclasses.replace(
            request, agreement=dataclasses.replace(request.agreement, agreement=a)
        )
    if request.consent is not None and draw(_SOMETIMES):
        t = request.consent.terms
        t = dataclasses.replace(
            t,
            item_codes=draw(_subsets([*CODES, UNKNOWN])),
            categories=draw(_subsets(Category)),
            data_from=draw(_OFFSET),
        )
        request = dataclasses.replace(
            request, consent=dataclasses.replace(request.consent, terms=t)
        )
    if draw(_SOMETIMES):
        request = dataclasses.replace(request, records=draw(_RECORDS))
    if request.subject_kind is NP and draw(_SOMETIMES):
        request = dataclasses.replace(request, subject_born=draw(_BIRTH_DATES))
    return request


# Around the 14th birthday (PIPL Art 31), and far from it.
_BIRTH_DATES = st.dates(
    min_value=(NOW - 15 * 366 * DAY).date(), max_value=(NOW - 13 * 365 * DAY).date()
) | st.sampled_from([(NOW - 40 * 366 * DAY).date(), (NOW - DAY).date()])


_ANY_REQUEST = st.one_of(_requests(), _allowed_requests(), _allowed_requests())


@settings(max_examples=200, deadline=None)
@given(_ANY_REQUEST)
def test_property_nothing_leaves_that_the_rules_forbid(request: ReleaseRequest) -> None:
    """(a) never a record of an uncatalogued, unagreed or not-allowed item; (b) a refusal
    releases nothing; (d) releases and withheld records are disjoint parts of the request."""
    decision = decide(request, CATALOG, NOW)
    _check_invariants(request, decision)
    if decision.refusal is not None:
        assert decision.outcome is Outcome.REFUSED
    if request.agreement is not None and request.channel not in UNCOUNTED | {SELF_INQ}:
        a = request.agreement
        assert len(decision.releases) <= max(
            0, a.agreement.quotas.records_per_day - a.records_today
        )


@settings(max_examples=150, deadline=None)
@given(
    _allowed_requests(st.sampled_from(sorted(UNCOUNTED, key=lambda c: c.value))),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
def test_property_feed_and_delivery_ignore_the_daily_quotas(
    request: ReleaseRequest, calls: int, records: int
) -> None:
    """The feed and the delivery hand each change over once: whatever the day's calls and
    records, the decision is the same, and nothing is refused or withheld for a quota."""
    assert request.agreement is not None
    used = dataclasses.replace(
        request,
        agreement=dataclasses.replace(request.agreement, calls_today=calls, records_today=records),
    )
    decision = decide(used, CATALOG, NOW)
    assert decision == decide(request, CATALOG, NOW)
    assert R.QUOTA_CALLS_EXHAUSTED.value not in decision.reasons
    assert R.QUOTA_RECORDS_EXHAUSTED.value not in decision.reasons


@settings(max_examples=150, deadline=None)
@given(_ANY_REQUEST, st.none() | _CONSENTS)
def test_property_only_the_authorized_channel_reads_a_consent(
    request: ReleaseRequest, other: Consent | None
) -> None:
    """Every other channel decides the same with any consent or none (Art 20 paras 1 and 3:
    government sharing and exchange carry none)."""
    if request.channel is AUTH_INQ:
        return
    decision = decide(dataclasses.replace(request, consent=other), CATALOG, NOW)
    assert decision == decide(request, CATALOG, NOW)
    assert decision.uses_consent is False


@settings(max_examples=150, deadline=None)
@given(_ANY_REQUEST, st.randoms(use_true_random=False))
def test_property_deterministic_and_independent_of_record_order(
    request: ReleaseRequest, rnd: Any
) -> None:
    """(c)"""
    first = decide(request, CATALOG, NOW)
    assert decide(request, CATALOG, NOW) == first
    shuffled = list(request.records)
    rnd.shuffle(shuffled)
    assert decide(dataclasses.replace(request, records=tuple(shuffled)), CATALOG, NOW) == first
    reversed_records = dataclasses.replace(request, records=tuple(reversed(request.records)))
    assert decide(reversed_records, CATALOG, NOW) == first


@settings(max_examples=150, deadline=None)
@given(_ANY_REQUEST)
def test_property_every_record_in_question_is_accounted_for(request: ReleaseRequest) -> None:
    """An allowed request names a fate for every record of an item it let through."""
    decision = decide(request, CATALOG, NOW)
    if decision.refusal is not None:
        return
    withheld_codes = {x.item_code for x in decision.withheld_items}
    decided = {x.record_id for x in decision.releases} | {
        x.record_id for x in decision.withheld_records
    }
    for rec in request.records:
        in_question = (
            rec.item_code in request.requested_items
            if request.requested_items
            else CATALOG.item(rec.item_code) is not None
        )
        if in_question and rec.item_code not in withheld_codes and rec.id not in decided:
            # only records of items the default request skipped (not covered by the agreement)
            item = CATALOG.item(rec.item_code)
            assert item is not None
            assert not request.requested_items
            assert request.agreement is not None
            assert not request.agreement.agreement.covers_item(item)


def _public_only_requests(channel: Channel) -> st.SearchStrategy[ReleaseRequest]:
    return st.one_of(
        _allowed_requests(st.just(channel)),
        _allowed_requests(st.just(channel)).map(
            lambda r: dataclasses.replace(r, subject_kind=NP, subject_id=PERSON)
        ),
        _requests().map(lambda r: dataclasses.replace(r, channel=channel)),
    )


_EXCHANGE_REQUESTS = st.sampled_from(EXCHANGE).flatmap(_public_only_requests)
_PUBLIC_ONLY_WITHHOLDS = {
    code: (
        R.NOT_PUBLIC_CREDIT_INFORMATION
        if item.info_kind is not InfoKind.PUBLIC
        else R.WRITTEN_CONSENT_REQUIRED
    )
    for code, item in CATALOG.items.items()
    if item.info_kind is not InfoKind.PUBLIC or item.art16 is Art16Class.WRITTEN_CONSENT
}


def test_the_catalog_has_what_government_sharing_must_withhold() -> None:
    assert set(_PUBLIC_ONLY_WITHHOLDS.values()) == {
        R.NOT_PUBLIC_CREDIT_INFORMATION,
        R.WRITTEN_CONSENT_REQUIRED,
    }


def _check_public_information_only(request: ReleaseRequest) -> None:
    """Whatever the agreement, levels, subject or records, no market information or Art 16
    written-consent item leaves, and each one in question is named withheld with its reason."""
    decision = decide(request, CATALOG, NOW)
    assert not {x.item_code for x in decision.releases} & set(_PUBLIC_ONLY_WITHHOLDS)
    assert not {x.item_code for x in decision.withheld_records} & set(_PUBLIC_ONLY_WITHHOLDS)
    if decision.refusal is not None and not decision.withheld_items:
        return  # refused before any item was looked at
    for code in request.requested_items:
        if code in _PUBLIC_ONLY_WITHHOLDS:
            assert ItemWithheld(code, _PUBLIC_ONLY_WITHHOLDS[code]) in decision.withheld_items


@settings(max_examples=300, deadline=None)
@given(_public_only_requests(GOV_SHARE))
def test_property_government_sharing_never_releases_market_or_written_consent_items(
    request: ReleaseRequest,
) -> None:
    """Art 20 para 1: a government department is given public credit information only."""
    _check_public_information_only(request)


@settings(max_examples=300, deadline=None)
@given(_EXCHANGE_REQUESTS)
def test_property_exchange_never_releases_market_or_written_consent_items(
    request: ReleaseRequest,
) -> None:
    """Art 20 para 3: a platform, on a pull, the feed or our delivery, is given public credit
    information only, as a government department is."""
    _check_public_information_only(request)
