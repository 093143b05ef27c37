"""The single release decision. Every read path (inquiry, sharing, self-inquiry, the platforms'
pull and change feed, outbound delivery) builds a ReleaseRequest from state read in its release
transaction and calls decide(); nothing else decides what leaves. Pure: no I/O, the clock is an
argument.

Steps, in order (the first refusal ends the request; later steps withhold items or records):
  1. the caller's kind may use the channel                      (Art 17, 20)
  2. an agreement with the caller, active and in force, that allows the operation, purpose and
     subject kind; the day's call quota is not used up (the feed excepted: _UNCOUNTED)
                                                                (Art 20, 36)
  3. on the authorized channel: a consent of this subject to this caller, active, in its window,
     with uses left, for this purpose                           (Art 19, 20 para 2)
  4. per item: in the catalog; (open channel) not a minor's, unless a State provision says so;
     (government sharing, exchange) public credit information that needs no written consent;
     covered by the agreement, its disclosure level for the subject's kind open to the channel
     and agreed, and (authorized channel) covered by the consent; Art 16 written-consent items
     only when named one by one                                 (Art 9-10, 16-20; PIPL Art 31)
  5. per record: in service, not suspended under objection (labelled while pending), inside the
     disclosure period and the consent's data range, within the day's record quota
                                                                (Art 19, 29-31)

What a government department gets (Art 20 para 1: "the non-public Public Credit Information
aggregated by the Provincial Social Credit Information Center", for its duties, no consent):
  OPEN, AUTHORIZED, GOVERNMENT level   released, when public credit information (Art 17-18, 20.1)
  SELF level                           NOT_DISCLOSABLE_ON_CHANNEL: the real-name inquiry alone
  market information, any level        NOT_PUBLIC_CREDIT_INFORMATION: Art 3 sets it apart from
                                       public credit information, which is all 20.1 shares
  Art 16 written-consent, any level    WRITTEN_CONSENT_REQUIRED: Art 16 para 2 (2) and Art 19
                                       release it only with the person's written consent, and
                                       government sharing carries none. For every subject kind:
                                       the catalog classes the item, as the authorized channel
                                       reads it (named one by one) for every kind too
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from credit_gateway.domain.agreements import Agreement, AgreementStatus, Operation
from credit_gateway.domain.catalog import (
    Art16Class,
    Catalog,
    CatalogItem,
    DisclosureLevel,
    InfoKind,
)
from credit_gateway.domain.consent import Consent, ConsentStatus
from credit_gateway.domain.decisions import (
    LABEL_OBJECTION_PENDING,
    Decision,
    ItemWithheld,
    Reason,
    RecordRelease,
    RecordWithheld,
)
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.minors import is_minor
from credit_gateway.domain.participants import ParticipantKind as PK

OBJECTION_RESPONSE_PERIOD = timedelta(days=15)  # Art 29 para 2


class Channel(enum.Enum):
    OPEN_INQUIRY = "open_inquiry"
    AUTHORIZED_INQUIRY = "authorized_inquiry"
    GOVERNMENT_SHARING = "government_sharing"
    SELF_INQUIRY = "self_inquiry"
    # Exchange with the national and provincial platforms (Art 20 para 3, 21): PullRecords;
    # SubscribeChanges; and our delivery to a peer platform (the push operation, outbound),
    # the last two handing over records nobody asked for one by one.
    EXCHANGE_PULL = "exchange_pull"
    EXCHANGE_FEED = "exchange_feed"
    EXCHANGE_DELIVERY = "exchange_delivery"


_OPERATION: Mapping[Channel, Operation] = {
    Channel.OPEN_INQUIRY: Operation.INQUIRY,
    Channel.AUTHORIZED_INQUIRY: Operation.INQUIRY,
    Channel.GOVERNMENT_SHARING: Operation.GOVERNMENT_SHARING,
    Channel.EXCHANGE_PULL: Operation.BULK_PULL,
    Channel.EXCHANGE_FEED: Operation.CHANGE_FEED,
    Channel.EXCHANGE_DELIVERY: Operation.PUSH,
}
_PLATFORMS = frozenset({PK.NATIONAL_PLATFORM, PK.PROVINCIAL_PLATFORM})
# What the platforms exchange is the public credit information the centers aggregate, at the
# levels their agreement names, without consent: never market information or an Art 16
# written-consent item, as in government sharing (Art 20 para 1 and 3).
_EXCHANGE = frozenset({Channel.EXCHANGE_PULL, Channel.EXCHANGE_FEED, Channel.EXCHANGE_DELIVERY})
_PUBLIC_ONLY = _EXCHANGE | {Channel.GOVERNMENT_SHARING}
# The feed and the delivery hand each change over once, in order: a daily quota would open a gap
# in what promises none. What they carry is bounded by the agreement's items; pulls count.
_UNCOUNTED = frozenset({Channel.EXCHANGE_FEED, Channel.EXCHANGE_DELIVERY})
_CALLERS: Mapping[Channel, frozenset[PK]] = {
    Channel.OPEN_INQUIRY: frozenset(
        {
            PK.NATIONAL_PLATFORM,
            PK.PROVINCIAL_PLATFORM,
            PK.CREDIT_AGENCY,
            PK.INDUSTRY_ASSOCIATION,
            PK.GOVERNMENT_DEPARTMENT,
        }
    ),
    Channel.AUTHORIZED_INQUIRY: frozenset(
        {PK.CREDIT_AGENCY, PK.INDUSTRY_ASSOCIATION}
    ),  # Art 20 para 2
    Channel.GOVERNMENT_SHARING: frozenset({PK.GOVERNMENT_DEPARTMENT}),  # Art 20 para 1
    **dict.fromkeys(_EXCHANGE, _PLATFORMS),  # Art 20 para 3
}
_SHARED_LEVELS = frozenset(
    {DisclosureLevel.OPEN, DisclosureLevel.AUTHORIZED, DisclosureLevel.GOVERNMENT}
)
_LEVELS: Mapping[Channel, frozenset[DisclosureLevel]] = {
    Channel.OPEN_INQUIRY: frozenset({DisclosureLevel.OPEN}),
    Channel.AUTHORIZED_INQUIRY: frozenset({DisclosureLevel.OPEN, DisclosureLevel.AUTHORIZED}),
    Channel.GOVERNMENT_SHARING: _SHARED_LEVELS,
    **dict.fromkeys(_EXCHANGE, _SHARED_LEVELS),
    Channel.SELF_INQUIRY: frozenset(DisclosureLevel),
}
_CONSENT_REFUSALS: Mapping[ConsentStatus, Reason] = {
    ConsentStatus.REVOKED: Reason.CONSENT_REVOKED,
    ConsentStatus.PAUSED: Reason.CONSENT_PAUSED,
    ConsentStatus.EXPIRED: Reason.CONSENT_EXPIRED,
    ConsentStatus.EXHAUSTED: Reason.CONSENT_EXHAUSTED,
}


@dataclass(frozen=True, slots=True)
class RecordState:
    id: str
    item_code: str
    occurred_at: datetime
    in_service: bool = True  # False once deleted from service and archived (Art 29-31)
    objection_filed_at: datetime | None = None  # an unresolved objection (Art 29)
    # When its disclosure period ends (its item's rule on its payload, set when stored);
    # None: the item's default period from occurred_at.
    disclosure_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class AgreementState:
    agreement: Agreement
    status: AgreementStatus
    calls_today: int = 0
    records_today: int = 0


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    channel: Channel
    caller_id: str  # a participant id, or the subject's id on the self channel
    caller_kind: PK | None  # None on the self channel
    subject_id: str
    subject_kind: SubjectKind
    purpose: str
    requested_items: tuple[str, ...] = ()  # empty: everything the caller may see
    agreement: AgreementState | None = None
    consent: Consent | None = None
    records: tuple[RecordState, ...] = field(default=())
    # A natural person's birth date, from its resident ID (None: not a natural person, or its
    # code is not one): the open channel withholds a minor's items (PIPL Art 31).
    subject_born: date | None = None


def decide(request: ReleaseRequest, catalog: Catalog, now: datetime) -> Decision:
    refusal = _refuse_request(request, now)
    if refusal is not None:
        return Decision(refusal)

    allowed: dict[str, CatalogItem] = {}
    withheld_items: list[ItemWithheld] = []
    for code in _items_in_question(request, catalog):
        item = catalog.item(code)
        reason = Reason.NOT_IN_CATALOG if item is None else _refuse_item(request, item, now)
        if reason is not None or item is None:
            withheld_items.append(ItemWithheld(code, reason or Reason.NOT_IN_CATALOG))
        else:
            allowed[code] = item
    if request.requested_items and not allowed:
        # Nothing asked for may be seen: refuse the request with the first item's reason.
        return Decision(withheld_items[0].reason, withheld_items=tuple(withheld_items))
    if (
        not request.requested_items
        and not allowed
        and not withheld_items
        and request.channel is not Channel.SELF_INQUIRY
    ):
        # The agreement covers no item of the catalog at all: nothing could ever be released.
        return Decision(Reason.NOTHING_REQUESTABLE)

    releases: list[RecordRelease] = []
    withheld_records: list[RecordWithheld] = []
    record_budget = _record_budget(request)
    for record in sorted(request.records, key=lambda r: (r.item_code, r.occurred_at, r.id)):
        item = allowed.get(record.item_code)
        if item is None:
            continue  # not asked for, or withheld as an item above
        reason, labels = _judge_record(request, item, record, now)
        if reason is None and len(releases) >= record_budget:
            reason = Reason.QUOTA_RECORDS_EXHAUSTED
        if reason is None:
            releases.append(RecordRelease(record.id, record.item_code, labels))
        else:
            withheld_records.append(RecordWithheld(record.id, record.item_code, reason))
    return Decision(
        None,
        tuple(releases),
        tuple(withheld_records),
        tuple(withheld_items),
        uses_consent=request.channel is Channel.AUTHORIZED_INQUIRY,
    )


def _refuse_request(request: ReleaseRequest, now: datetime) -> Reason | None:
    if request.channel is Channel.SELF_INQUIRY:
        # Who the subject is comes from the subject token's `sub` (QueryOwn takes no subject
        # code); this check keeps participants off the self channel.
        is_subject = request.caller_kind is None and request.caller_id == request.subject_id
        return None if is_subject else Reason.CALLER_KIND_NOT_ALLOWED
    if request.caller_kind not in _CALLERS[request.channel]:
        return Reason.CALLER_KIND_NOT_ALLOWED
    reason = _refuse_agreement(request, now)
    if reason is None and request.channel is Channel.AUTHORIZED_INQUIRY:
        reason = _refuse_consent(request, now)
    return reason


def not_in_force(state: AgreementState, operation: Operation, now: datetime) -> Reason | None:
    """Why `operation` may not be done under the agreement at `now`, or None when the agreement
    is in force for it: active, inside its validity, and agreeing to the operation. The one
    definition: decide() asks it of every call's agreement, the consent lifecycle of the
    agreements a grantee must hold to be given consent (consent/lifecycle.py, Art 20 para 2)."""
    agreement = state.agreement
    checks = (
        (state.status is not AgreementStatus.ACTIVE, Reason.AGREEMENT_SUSPENDED),
        (now < agreement.valid_from, Reason.AGREEMENT_NOT_YET_VALID),
        (now >= agreement.valid_until, Reason.AGREEMENT_EXPIRED),
        (operation not in agreement.operations, Reason.OPERATION_NOT_AGREED),
    )
    return next((reason for failed, reason in checks if failed), None)


def naming(
    states: Iterable[AgreementState], operation: Operation, now: datetime
) -> list[tuple[AgreementState, Reason | None]]:
    """The agreements that name `operation`, in the order given, each with why it is not in
    force for it at `now` (None: in force). What a platform may push, and under which agreement
    we deliver to it, are read from this."""
    return [
        (state, not_in_force(state, operation, now))
        for state in states
        if operation in state.agreement.operations
    ]


def _refuse_agreement(request: ReleaseRequest, now: datetime) -> Reason | None:
    state = request.agreement
    if state is None:
        return Reason.AGREEMENT_REQUIRED
    agreement = state.agreement
    if agreement.counterparty != request.caller_id:
        return Reason.AGREEMENT_OTHER_PARTY
    checks = (
        (request.purpose not in agreement.purposes, Reason.PURPOSE_NOT_AGREED),
        (request.subject_kind not in agreement.subject_kinds, Reason.SUBJECT_KIND_NOT_AGREED),
        (
            request.channel not in _UNCOUNTED
            and state.calls_today >= agreement.quotas.calls_per_day,
            Reason.QUOTA_CALLS_EXHAUSTED,
        ),
    )
    refusal = not_in_force(state, _OPERATION[request.channel], now)
    return refusal or next((reason for failed, reason in checks if failed), None)


def _refuse_consent(request: ReleaseRequest, now: datetime) -> Reason | None:
    consent = request.consent
    if consent is None:
        return Reason.CONSENT_REQUIRED
    if consent.terms.grantee != request.caller_id:
        return Reason.CONSENT_OTHER_GRANTEE
    if consent.subject_id != request.subject_id:
        return Reason.CONSENT_OTHER_SUBJECT
    status = consent.effective_status(now)
    if status in _CONSENT_REFUSALS:
        return _CONSENT_REFUSALS[status]
    if now < consent.terms.valid_from:
        return Reason.CONSENT_NOT_YET_VALID
    if consent.terms.purpose_code != request.purpose:
        return Reason.PURPOSE_NOT_CONSENTED
    return None


def _items_in_question(request: ReleaseRequest, catalog: Catalog) -> list[str]:
    if request.requested_items:
        return list(dict.fromkeys(request.requested_items))
    if request.channel is Channel.SELF_INQUIRY or request.agreement is None:
        return sorted(catalog.items)
    agreement = request.agreement.agreement
    return sorted(code for code, item in catalog.items.items() if agreement.covers_item(item))


def _refuse_item(request: ReleaseRequest, item: CatalogItem, now: datetime) -> Reason | None:
    if request.channel in _PUBLIC_ONLY:
        # Before the level and the agreement: no agreement or level makes these shareable.
        if item.info_kind is not InfoKind.PUBLIC:
            return Reason.NOT_PUBLIC_CREDIT_INFORMATION
        if item.art16 is Art16Class.WRITTEN_CONSENT:
            return Reason.WRITTEN_CONSENT_REQUIRED
    level = item.level_for(request.subject_kind)
    if level not in _LEVELS[request.channel]:
        return Reason.NOT_DISCLOSABLE_ON_CHANNEL
    if (
        request.channel is Channel.OPEN_INQUIRY
        and request.subject_kind is SubjectKind.NATURAL_PERSON
        and not item.open_to_minors_by_state_provision
        and is_minor(request.subject_born, now)
    ):
        return Reason.MINOR_NOT_OPEN
    if request.channel is Channel.SELF_INQUIRY:
        return None
    assert request.agreement is not None  # step 2 refused the request otherwise
    agreement = request.agreement.agreement
    if not agreement.covers_item(item):
        return Reason.ITEM_NOT_AGREED
    if level not in agreement.levels:
        return Reason.LEVEL_NOT_AGREED
    if request.channel is Channel.AUTHORIZED_INQUIRY and level is not DisclosureLevel.OPEN:
        assert request.consent is not None  # step 3 refused the request otherwise
        if not request.consent.terms.covers(item):
            return Reason.ITEM_NOT_CONSENTED
    return None


def _judge_record(
    request: ReleaseRequest, item: CatalogItem, record: RecordState, now: datetime
) -> tuple[Reason | None, tuple[str, ...]]:
    if not record.in_service:
        return Reason.NOT_IN_SERVICE, ()
    if request.channel is Channel.SELF_INQUIRY:  # the subject sees its own records as they stand
        return None, (LABEL_OBJECTION_PENDING,) if record.objection_filed_at else ()
    labels: tuple[str, ...] = ()
    if record.objection_filed_at is not None:
        if now >= record.objection_filed_at + OBJECTION_RESPONSE_PERIOD:
            return Reason.OBJECTION_SUSPENDED, ()
        labels = (LABEL_OBJECTION_PENDING,)
    if now >= disclosure_until(record, item):
        return Reason.DISCLOSURE_PERIOD_ENDED, ()
    consent = request.consent
    if (
        request.channel is Channel.AUTHORIZED_INQUIRY
        and consent is not None
        and not consent.terms.data_from <= record.occurred_at < consent.terms.data_to
    ):
        return Reason.OUTSIDE_CONSENT_DATA_RANGE, ()
    return None, labels


def disclosure_until(record: RecordState, item: CatalogItem) -> datetime:
    """When `record`'s disclosure period ends: as stored, or the item's default period."""
    if record.disclosure_until is not None:
        return record.disclosure_until
    return item.disclosure_until({}, record.occurred_at)


def _record_budget(request: ReleaseRequest) -> int:
    if request.agreement is None or request.channel in _UNCOUNTED:
        return len(request.records)
    return max(
        0, request.agreement.agreement.quotas.records_per_day - request.agreement.records_today
    )
