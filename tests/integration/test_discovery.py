"""DiscoveryService end to end (issue #11 item 18): every participant kind that holds agreements
reads the catalog in force; ListAgreements answers the caller's own agreements and never
another's; the method is refused without a token, without its scope and to a subject."""

from __future__ import annotations

import json

import grpc
import pytest
from support.harness import CATALOG_FILE, Harness, make_agreement, metadata
from support.rpc import refusal
from support.scenario import audit_ids

from credit_gateway.adapters.grpc.v1 import common_pb2, discovery_pb2, discovery_pb2_grpc
from credit_gateway.auth.scopes import DISCOVERY, SCOPES_BY_KIND
from credit_gateway.domain.participants import ParticipantKind
from credit_gateway.services import operator

pytestmark = pytest.mark.db

# Every kind that may hold an agreement (a real-name portal acts for subjects and holds none).
CALLER_KINDS = [k for k in ParticipantKind if DISCOVERY in SCOPES_BY_KIND[k]]


def _stub(channel: grpc.Channel) -> discovery_pb2_grpc.DiscoveryServiceStub:
    return discovery_pb2_grpc.DiscoveryServiceStub(channel)


def test_discovery_is_for_every_kind_but_the_portals() -> None:
    assert set(ParticipantKind) - set(CALLER_KINDS) == {ParticipantKind.IDENTITY_PROVIDER}


@pytest.mark.parametrize("kind", CALLER_KINDS, ids=str)
def test_each_caller_kind_gets_the_catalog_in_force(harness: Harness, kind: str) -> None:
    caller = harness.add_participant(f"caller-{kind}", kind)
    catalog = _stub(caller.channel).GetCatalog(
        discovery_pb2.GetCatalogRequest(), metadata=metadata(harness.token(caller)), timeout=10
    )
    document = json.loads(CATALOG_FILE.read_text())
    assert catalog.version == str(document["version"])
    assert [i.code for i in catalog.items] == sorted(i["code"] for i in document["items"])
    assert {p.code for p in catalog.purposes} == {p["code"] for p in document["purposes"]}
    by_code = {i["code"]: i for i in document["items"]}
    for item in catalog.items:
        raw = by_code[item.code]
        assert (item.title, item.category, item.polarity) == (
            raw["title"],
            raw["category"],
            raw["polarity"],
        )
        # Every kind of subject, individual businesses included (natural persons' level unless
        # the catalog names theirs).
        levels = {d.subject_kind: d.level for d in item.disclosure}
        assert len(levels) == len(common_pb2.SubjectKind.values()) - 1
        person = raw["disclosure"]["natural_person"]
        business = raw["disclosure"].get("individual_business", person)
        assert levels[
            common_pb2.SUBJECT_KIND_INDIVIDUAL_BUSINESS
        ] == common_pb2.DisclosureLevel.Value(f"DISCLOSURE_LEVEL_{business.upper()}")
        assert item.written_consent == (raw.get("art16") == "written_consent")
        rule = raw.get("disclosure_period_by", {"field": "", "periods": {}})
        assert item.disclosure_period_field == rule["field"]
        assert {
            p.value: {"shortest_days": p.shortest_days, "longest_days": p.longest_days}
            for p in item.disclosure_periods
        } == rule["periods"]
        assert item.open_to_minors_by_state_provision == raw.get(
            "open_to_minors_by_state_provision", ""
        )
    punishment = next(i for i in catalog.items if i.code == "ADM.PUNISHMENT")
    assert [p.value for p in punishment.disclosure_periods] == ["general", "serious"]


def test_list_agreements_answers_only_the_callers_own(harness: Harness) -> None:
    agency = harness.add_participant("zx-credit", "credit-agency")
    platform = harness.add_participant("hubei-platform", "provincial-platform")
    mine = [
        make_agreement(harness, agency, agreement_id="agr-zx-1", categories=("registration",)),
        make_agreement(
            harness,
            agency,
            agreement_id="agr-zx-2",
            items=("ADM.PUNISHMENT",),
            purposes=("LOAN_APPROVAL", "CONTRACT_DUE_DILIGENCE"),
            levels=("open",),
            subject_kinds=("legal_person",),
            calls_per_day=7,
            records_per_day=70,
        ),
    ]
    make_agreement(harness, platform, agreement_id="agr-platform", categories=("judicial",))
    operator.suspend_agreement(harness.settings, "agr-zx-1")

    listed = _stub(agency.channel).ListAgreements(
        discovery_pb2.ListAgreementsRequest(), metadata=metadata(harness.token(agency)), timeout=10
    )
    assert [a.agreement_id for a in listed.agreements] == [m["agreement"]["id"] for m in mine]
    first, second = listed.agreements
    assert first.status == "suspended"
    assert list(first.categories) == ["registration"]
    assert second.status == "active"
    assert list(second.item_codes) == ["ADM.PUNISHMENT"]
    assert list(second.purposes) == ["CONTRACT_DUE_DILIGENCE", "LOAN_APPROVAL"]
    assert list(second.levels) == [common_pb2.DISCLOSURE_LEVEL_OPEN]
    assert list(second.subject_kinds) == [common_pb2.SUBJECT_KIND_LEGAL_PERSON]
    assert (second.calls_per_day, second.records_per_day) == (7, 70)
    assert list(second.operations) == ["inquiry"]
    assert second.valid_until.ToDatetime() > second.valid_from.ToDatetime()

    theirs = _stub(platform.channel).ListAgreements(
        discovery_pb2.ListAgreementsRequest(),
        metadata=metadata(harness.token(platform)),
        timeout=10,
    )
    assert [a.agreement_id for a in theirs.agreements] == ["agr-platform"]


def test_a_participant_without_agreements_lists_none(harness: Harness) -> None:
    unit = harness.add_participant("hubei-amr", "providing-unit")
    listed = _stub(unit.channel).ListAgreements(
        discovery_pb2.ListAgreementsRequest(), metadata=metadata(harness.token(unit)), timeout=10
    )
    assert list(listed.agreements) == []


@pytest.mark.parametrize("method", ["GetCatalog", "ListAgreements"])
def test_refused_without_token_scope_or_as_a_subject(harness: Harness, method: str) -> None:
    agency = harness.add_participant("zx-credit", "credit-agency")
    portal = harness.add_participant("realname-portal", "identity-provider")
    make_agreement(harness, agency)
    before = audit_ids(harness.db)
    request = (
        discovery_pb2.GetCatalogRequest()
        if method == "GetCatalog"
        else discovery_pb2.ListAgreementsRequest()
    )

    def call(channel: grpc.Channel, md: tuple[tuple[str, str], ...]) -> object:
        return getattr(_stub(channel), method)(request, metadata=md, timeout=10)

    assert refusal(lambda: call(agency.channel, ())) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_MISSING",
    )
    narrow = harness.token(agency, scopes=["inquiry.open", "inquiry.authorized"])
    assert refusal(lambda: call(agency.channel, metadata(narrow))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "SCOPE_MISSING",
    )
    subject = harness.subject_token(portal, "11010519491231002X")
    assert refusal(lambda: call(portal.channel, metadata(subject))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "WRONG_PRINCIPAL",
    )
    # Another participant's token on the agency's connection: not bound to this certificate.
    other = harness.add_participant("other-credit", "credit-agency")
    code, _ = refusal(lambda: call(agency.channel, metadata(harness.token(other))))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert audit_ids(harness.db) == before  # a read: nothing written, refused or not


def test_a_suspended_participant_is_refused(harness: Harness) -> None:
    agency = harness.add_participant("zx-credit", "credit-agency")
    make_agreement(harness, agency)
    token = harness.token(agency)
    operator.suspend_participant(harness.settings, agency.id)
    code, reason = refusal(
        lambda: _stub(agency.channel).ListAgreements(
            discovery_pb2.ListAgreementsRequest(), metadata=metadata(token), timeout=10
        )
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "PARTICIPANT_SUSPENDED")
