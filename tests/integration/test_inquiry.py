"""InquiryService over the real server (Art 17-20, 29, 36).

Every read path answers through the one release decision, writes exactly one audit entry per
decided call (refusals included), and never lets out a record the policy withholds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select, update
from support.audit_entries import INQUIRIES
from support.harness import (
    COMPANY,
    PERSON,
    Harness,
    Participant,
    make_agreement,
    metadata,
    signed_record,
)
from support.rpc import field_violations, reason_of

from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.v1 import (
    common_pb2,
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2_grpc,
)
from credit_gateway.adapters.storage.tables import AuditEntryRow, Base, RecordRow, SubjectRow
from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.identifiers import resident_id_check_character

OTHER_PERSON = "42010119850612003" + resident_id_check_character("42010119850612003")
AGENCY_AGREEMENT = "agr-zx-credit"
GOV_AGREEMENT = "agr-hubei-drc"


# --- helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audited:
    outcome: str  # the column
    body: dict[str, Any]  # the canonical entry


def audit_log(h: Harness) -> list[Audited]:
    with h.db.transaction(write=False) as session:
        rows = session.execute(
            select(AuditEntryRow.outcome, AuditEntryRow.body)
            .where(INQUIRIES)
            .order_by(AuditEntryRow.seq)
        ).all()
    return [Audited(outcome, json.loads(body)) for outcome, body in rows]


def count(h: Harness, table: Any) -> int:
    with h.db.transaction(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def inquiry(participant: Participant) -> inquiry_pb2_grpc.InquiryServiceStub:
    return inquiry_pb2_grpc.InquiryServiceStub(participant.channel)


def query(
    subject: str, *items: str, agreement: str = AGENCY_AGREEMENT, purpose: str = "LOAN_APPROVAL"
) -> Any:
    return inquiry_pb2.QueryRequest(
        subject_code=subject, item_codes=list(items), purpose=purpose, agreement_id=agreement
    )


def withheld(response: Any) -> set[tuple[str, str, int]]:
    return {(w.item_code, w.reason, w.count) for w in response.withheld}


# --- the records the tests inquire into --------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    provider: str
    item: str
    subject: str
    days_ago: int
    payload: dict[str, Any]
    notice: str = ""


def _punishment(marker: str) -> dict[str, Any]:
    return {
        "decision_no": marker,
        "violation": "unlicensed trading",
        "penalty": "fine",
        "decided_on": "2026-01-02",
        "authority": "Wuhan AMR",
    }


# Each payload carries a marker found nowhere else, so a leak shows in the response bytes.
# ADM.PUNISHMENT's disclosure period is 1095 days: the 1500-day-old ones are past it.
SEEDS: dict[str, Seed] = {
    "c_reg": Seed(
        "hubei-amr",
        "REG.ENTERPRISE",
        COMPANY,
        10,
        {"name": "M-c_reg", "established_on": "2015-03-01"},
    ),
    "c_pun": Seed("hubei-amr", "ADM.PUNISHMENT", COMPANY, 5, _punishment("M-c_pun"), "N-1"),
    "c_pun_old": Seed(
        "hubei-amr", "ADM.PUNISHMENT", COMPANY, 1500, _punishment("M-c_pun_old"), "N-2"
    ),
    "c_permit": Seed(
        "hubei-amr",
        "ADM.PERMIT",
        COMPANY,
        5,
        {"permit_no": "M-c_permit", "permit_type": "food", "authority": "AMR"},
    ),
    "c_tax": Seed("hubei-tax", "TAX.PAID", COMPANY, 5, {"year": 2025, "amount_cny": 11111.11}),
    "c_soc": Seed(
        "hubei-hrss",
        "SOC.INSURANCE_ARREARS",
        COMPANY,
        5,
        {"amount_cny": 33333.33, "months": 3},
        "N-3",
    ),
    "p_pun": Seed("hubei-amr", "ADM.PUNISHMENT", PERSON, 5, _punishment("M-p_pun"), "N-4"),
    "p_pun_mid": Seed(
        "hubei-amr", "ADM.PUNISHMENT", PERSON, 200, _punishment("M-p_pun_mid"), "N-5"
    ),
    "p_pun_old": Seed(
        "hubei-amr", "ADM.PUNISHMENT", PERSON, 1500, _punishment("M-p_pun_old"), "N-6"
    ),
    "p_permit": Seed(
        "hubei-amr",
        "ADM.PERMIT",
        PERSON,
        5,
        {"permit_no": "M-p_permit", "permit_type": "food", "authority": "AMR"},
    ),
    "p_tax": Seed("hubei-tax", "TAX.PAID", PERSON, 5, {"year": 2025, "amount_cny": 22222.22}),
    # REG.ENTERPRISE is SELF-level for a natural person (a sole trader, say).
    "p_reg": Seed(
        "hubei-amr",
        "REG.ENTERPRISE",
        PERSON,
        10,
        {"name": "M-p_reg", "established_on": "2016-01-01"},
    ),
    "p_soc": Seed(
        "hubei-hrss",
        "SOC.INSURANCE_ARREARS",
        PERSON,
        5,
        {"amount_cny": 44444.44, "months": 2},
        "N-7",
    ),
    "p_vol": Seed(
        "hubei-civil-affairs",
        "COM.VOLUNTEER",
        PERSON,
        5,
        {"kind": "donation", "description": "M-p_vol", "awarded_on": "2026-01-01"},
    ),
    "o_pun": Seed("hubei-amr", "ADM.PUNISHMENT", OTHER_PERSON, 5, _punishment("M-o_pun"), "N-8"),
}


def marker(label: str) -> bytes:
    """A byte string only this record's payload holds."""
    payload = SEEDS[label].payload
    for key in ("decision_no", "name", "permit_no", "description"):
        if key in payload:
            return str(payload[key]).encode()
    return canonical_bytes(payload["amount_cny"])


@dataclass
class World:
    h: Harness
    parties: dict[str, Participant]
    ids: dict[str, str] = field(default_factory=dict)  # seed label -> record id
    consent_token: str = ""

    def ids_of(self, *labels: str) -> set[str]:
        return {self.ids[label] for label in labels}


PROVIDERS = ("hubei-amr", "hubei-tax", "hubei-hrss", "hubei-civil-affairs")


def build_world(h: Harness, *labels: str) -> World:
    """Providers; a credit agency (agreement: registration, punishments, 'other' items and the
    dishonest-debtor list, open and authorized); a government department (government sharing of
    registration, punishments and 'other' items, at every level up to government); an identity
    portal; and the seeded records (all of them unless labels are named)."""
    parties = {p: h.add_participant(p, "providing-unit") for p in PROVIDERS}
    parties["agency"] = h.add_participant("zx-credit", "credit-agency")
    parties["gov"] = h.add_participant("hubei-drc", "government-department")
    parties["portal"] = h.add_participant("realname-portal", "identity-provider")
    categories = ("registration", "administrative_punishment", "administrative_other")
    make_agreement(h, parties["agency"], categories=(*categories, "joint_discipline_list"))
    make_agreement(
        h,
        parties["gov"],
        operations=("government_sharing",),
        categories=categories,
        purposes=("SUPERVISION",),
        levels=("open", "authorized", "government"),
    )
    world = World(h, parties)
    now = h.clock.now
    for label in labels or tuple(SEEDS):
        seed = SEEDS[label]
        provider = parties[seed.provider]
        record = signed_record(
            provider,
            record_id=label,
            item=seed.item,
            subject=seed.subject,
            payload=seed.payload,
            occurred_at=now - timedelta(days=seed.days_ago),
            notice=seed.notice,
        )
        result = submission_pb2_grpc.SubmissionServiceStub(provider.channel).SubmitRecords(
            iter([record]), metadata=metadata(h.token(provider)), timeout=10
        )
        assert result.accepted == 1, result
        world.ids[label] = result.results[0].record_id
    return world


def grant_consent(world: World, *, categories: tuple[str, ...], data_days: int) -> str:
    """The person consents, through the portal, to the agency seeing those categories of records
    that occurred in the last `data_days` days."""
    h, now = world.h, world.h.clock.now
    terms = consent_pb2.ConsentTerms(
        grantee="zx-credit",
        purpose_code="LOAN_APPROVAL",
        purpose_text="mortgage",
        categories=list(categories),
        data_from=to_timestamp(now - timedelta(days=data_days)),
        data_to=to_timestamp(now + timedelta(days=1)),
        valid_from=to_timestamp(now - timedelta(minutes=1)),
        valid_until=to_timestamp(now + timedelta(days=30)),
        max_uses=5,
    )
    portal = world.parties["portal"]
    granted = consent_pb2_grpc.ConsentServiceStub(portal.channel).GrantConsent(
        consent_pb2.GrantConsentRequest(terms=terms),
        metadata=metadata(h.subject_token(portal, PERSON)),
        timeout=10,
    )
    return str(granted.token.token)


def archive(h: Harness, record_id: str) -> None:
    """Art 30-31: the record is deleted from service and archived."""
    with h.db.transaction() as session:
        session.execute(update(RecordRow).where(RecordRow.id == record_id).values(state="archived"))


def query_own(world: World, subject: str = PERSON, *items: str) -> Any:
    portal = world.parties["portal"]
    return inquiry(portal).QueryOwn(
        inquiry_pb2.OwnQueryRequest(item_codes=list(items)),
        metadata=metadata(world.h.subject_token(portal, subject)),
        timeout=10,
    )


# --- QueryOpen ---------------------------------------------------------------------------------


def test_query_open_releases_a_companys_open_records(harness: Harness) -> None:
    h = harness
    world = build_world(h, "c_reg", "c_pun")
    agency = world.parties["agency"]

    answer = inquiry(agency).QueryOpen(
        query(COMPANY, "REG.ENTERPRISE", "ADM.PUNISHMENT"),
        metadata=metadata(h.token(agency)),
        timeout=10,
    )

    assert {(r.record_id, r.item_code, r.provider_code) for r in answer.records} == {
        (world.ids["c_reg"], "REG.ENTERPRISE", "hubei-amr"),
        (world.ids["c_pun"], "ADM.PUNISHMENT", "hubei-amr"),
    }
    payloads = {r.item_code: r.payload_json for r in answer.records}
    assert payloads["REG.ENTERPRISE"] == canonical_bytes(SEEDS["c_reg"].payload)
    assert payloads["ADM.PUNISHMENT"] == canonical_bytes(SEEDS["c_pun"].payload)
    assert list(answer.withheld) == []
    assert "NO_ONWARD_DISCLOSURE" in answer.conditions
    assert answer.agreement_id == AGENCY_AGREEMENT
    (entry,) = audit_log(h)
    assert entry.outcome == "RELEASED"
    assert entry.body["id"] == answer.inquiry_id
    assert set(entry.body["released"]) == world.ids_of("c_reg", "c_pun")


def test_query_open_withholds_a_persons_punishment_and_says_why(harness: Harness) -> None:
    h = harness
    world = build_world(h, "p_pun")
    agency = world.parties["agency"]

    # JUD.DISHONEST_DEBTOR is OPEN for persons too, so the request as a whole is allowed.
    answer = inquiry(agency).QueryOpen(
        query(PERSON, "ADM.PUNISHMENT", "JUD.DISHONEST_DEBTOR"),
        metadata=metadata(h.token(agency)),
        timeout=10,
    )

    assert list(answer.records) == []
    assert withheld(answer) == {("ADM.PUNISHMENT", "NOT_DISCLOSABLE_ON_CHANNEL", 0)}
    assert marker("p_pun") not in answer.SerializeToString()
    assert world.ids["p_pun"].encode() not in answer.SerializeToString()
    (entry,) = audit_log(h)
    assert (entry.outcome, entry.body["released"]) == ("WITHHELD", [])
    assert "NOT_DISCLOSABLE_ON_CHANNEL" in entry.body["reasons"]


@dataclass(frozen=True)
class OpenCase:
    subject: str
    items: tuple[str, ...]
    outcome: str
    released: tuple[str, ...] = ()
    refusal: str = ""  # the ErrorInfo reason when the call is refused


OPEN_CASES = {
    "released": OpenCase(COMPANY, ("REG.ENTERPRISE",), "RELEASED", ("c_reg",)),
    "partial": OpenCase(
        COMPANY, ("REG.ENTERPRISE", "SOC.INSURANCE_ARREARS"), "PARTIAL", ("c_reg",)
    ),
    "withheld": OpenCase(PERSON, ("ADM.PUNISHMENT", "JUD.DISHONEST_DEBTOR"), "WITHHELD"),
    "refused": OpenCase(
        PERSON, ("ADM.PUNISHMENT",), "REFUSED", refusal="NOT_DISCLOSABLE_ON_CHANNEL"
    ),
}


@pytest.mark.parametrize("case", OPEN_CASES.values(), ids=OPEN_CASES.keys())
def test_each_open_query_writes_exactly_one_audit_entry_with_its_outcome(
    harness: Harness, case: OpenCase
) -> None:
    h = harness
    world = build_world(h, "c_reg", "c_soc", "p_pun")
    agency = world.parties["agency"]

    def call() -> Any:
        return inquiry(agency).QueryOpen(
            query(case.subject, *case.items), metadata=metadata(h.token(agency)), timeout=10
        )

    if case.refusal:
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason_of(refused.value) == case.refusal
    else:
        answer = call()
        assert {r.record_id for r in answer.records} == {world.ids[x] for x in case.released}

    (entry,) = audit_log(h)
    assert entry.outcome == entry.body["outcome"] == case.outcome
    assert set(entry.body["released"]) == {world.ids[x] for x in case.released}
    assert (entry.body["caller"], entry.body["method"]) == ("zx-credit", "QueryOpen")
    assert (entry.body["purpose"], entry.body["agreement"]) == ("LOAN_APPROVAL", AGENCY_AGREEMENT)
    assert entry.body["items"] == list(case.items)
    if case.refusal:
        assert entry.body["reasons"] == [case.refusal]


# --- QueryOwn ----------------------------------------------------------------------------------


def test_query_own_shows_the_person_all_its_records_including_government_level(
    harness: Harness,
) -> None:
    h = harness
    world = build_world(h, "p_pun", "p_soc", "p_tax", "p_reg", "c_reg")

    answer = query_own(world)

    assert {r.record_id for r in answer.records} == world.ids_of("p_pun", "p_soc", "p_tax", "p_reg")
    by_item = {r.item_code: r.payload_json for r in answer.records}
    assert by_item["SOC.INSURANCE_ARREARS"] == canonical_bytes(SEEDS["p_soc"].payload)
    assert list(answer.withheld) == []
    (entry,) = audit_log(h)
    assert (entry.outcome, entry.body["method"]) == ("RELEASED", "QueryOwn")


def test_a_subject_sees_only_its_own_records(harness: Harness) -> None:
    h = harness
    world = build_world(h, "p_pun", "o_pun")

    mine = query_own(world, PERSON)
    theirs = query_own(world, OTHER_PERSON)

    # The method takes no subject code: the subject token's `sub` alone decides whose records.
    assert [r.record_id for r in mine.records] == [world.ids["p_pun"]]
    assert [r.record_id for r in theirs.records] == [world.ids["o_pun"]]
    assert marker("o_pun") not in mine.SerializeToString()
    assert marker("p_pun") not in theirs.SerializeToString()


def test_query_own_leaves_no_identity_number_in_the_audit_log(harness: Harness) -> None:
    h = harness
    world = build_world(h, "p_pun")

    query_own(world)

    (entry,) = audit_log(h)
    assert (entry.body["method"], entry.body["caller"]) == ("QueryOwn", "self")
    with h.db.transaction(write=False) as session:
        callers = list(session.scalars(select(AuditEntryRow.caller)))
        bodies = list(session.scalars(select(AuditEntryRow.body)))
    assert PERSON not in callers
    assert not any(PERSON.encode() in body for body in bodies)


def test_no_table_holds_the_identity_number_after_the_whole_story(harness: Harness) -> None:
    h = harness
    world = build_world(h, "p_pun", "p_tax")
    world.consent_token = grant_consent(
        world, categories=("administrative_punishment",), data_days=100
    )
    agency = world.parties["agency"]
    inquiry(agency).QueryAuthorized(
        inquiry_pb2.AuthorizedQueryRequest(
            query=query(PERSON, "ADM.PUNISHMENT"), consent_token=world.consent_token
        ),
        metadata=metadata(h.token(agency)),
        timeout=10,
    )
    query_own(world)

    leaks: list[str] = []
    with h.db.transaction(write=False) as session:
        for table in Base.metadata.sorted_tables:  # every table, every column
            for row in session.execute(select(table)).all():
                for column, value in zip(table.columns, row, strict=True):
                    raw = value.encode() if isinstance(value, str) else value
                    if isinstance(raw, bytes) and PERSON.encode() in raw:
                        leaks.append(f"{table.name}.{column.name}")
    assert len(audit_log(h)) == 2  # the story happened
    assert leaks == []


# --- ShareGovernment ---------------------------------------------------------------------------


def test_share_government_releases_government_level_records(harness: Harness) -> None:
    h = harness
    world = build_world(h, "p_soc")
    gov = world.parties["gov"]

    answer = inquiry(gov).ShareGovernment(
        query(PERSON, "SOC.INSURANCE_ARREARS", agreement=GOV_AGREEMENT, purpose="SUPERVISION"),
        metadata=metadata(h.token(gov)),
        timeout=10,
    )

    assert [r.record_id for r in answer.records] == [world.ids["p_soc"]]
    assert answer.records[0].payload_json == canonical_bytes(SEEDS["p_soc"].payload)
    (entry,) = audit_log(h)
    assert (entry.outcome, entry.body["method"], entry.body["caller"]) == (
        "RELEASED",
        "ShareGovernment",
        "hubei-drc",
    )


def test_a_credit_agency_cannot_call_share_government(harness: Harness) -> None:
    h = harness
    world = build_world(h, "p_soc")
    agency = world.parties["agency"]

    with pytest.raises(grpc.RpcError) as refused:
        inquiry(agency).ShareGovernment(
            query(PERSON, "SOC.INSURANCE_ARREARS"), metadata=metadata(h.token(agency)), timeout=10
        )

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == "SCOPE_MISSING"
    # Refused at the door by the token's scopes, before any inquiry is decided.
    assert audit_log(h) == []


def test_a_credit_agency_holding_the_sharing_scope_is_still_refused_and_recorded(
    harness: Harness,
) -> None:
    h = harness
    world = build_world(h, "p_soc")
    agency = world.parties["agency"]
    # Should a token ever carry the scope, the policy still refuses the kind of caller (Art 20).
    token = h.token(agency, scopes=["sharing.government"])

    with pytest.raises(grpc.RpcError) as refused:
        inquiry(agency).ShareGovernment(
            query(PERSON, "SOC.INSURANCE_ARREARS"), metadata=metadata(token), timeout=10
        )

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == "CALLER_KIND_NOT_ALLOWED"
    assert marker("p_soc") not in str(refused.value.details()).encode()
    (entry,) = audit_log(h)
    assert (entry.outcome, entry.body["reasons"], entry.body["released"]) == (
        "REFUSED",
        ["CALLER_KIND_NOT_ALLOWED"],
        [],
    )


# --- bad input ---------------------------------------------------------------------------------

BAD_QUERIES = {
    "malformed subject code": (
        query(PERSON[:-1] + "3", "ADM.PUNISHMENT"),  # wrong GB 11643 check character
        "subject_code",
        "BAD_IDENTIFIER",
    ),
    "missing purpose": (query(PERSON, "ADM.PUNISHMENT", purpose=""), "purpose", "INVALID_ARGUMENT"),
    "missing agreement": (
        query(PERSON, "ADM.PUNISHMENT", agreement=""),
        "agreement_id",
        "INVALID_ARGUMENT",
    ),
    # Longer than any id the gateway keeps: refused here, never a database error further in.
    "over-long agreement id": (
        query(PERSON, "ADM.PUNISHMENT", agreement="a" * 65),
        "agreement_id",
        "INVALID_ARGUMENT",
    ),
    "agreement id with a NUL": (
        query(PERSON, "ADM.PUNISHMENT", agreement="agr\x00x"),
        "agreement_id",
        "INVALID_ARGUMENT",
    ),
    "malformed item code": (query(PERSON, "adm punishment"), "item_codes", "INVALID_ARGUMENT"),
}


@pytest.mark.parametrize(
    ("request_pb", "field_name", "reason"), BAD_QUERIES.values(), ids=BAD_QUERIES.keys()
)
def test_a_malformed_query_is_refused_and_writes_nothing(
    harness: Harness, request_pb: Any, field_name: str, reason: str
) -> None:
    h = harness
    world = build_world(h, "p_pun")
    agency = world.parties["agency"]
    subjects = count(h, SubjectRow)

    with pytest.raises(grpc.RpcError) as refused:
        inquiry(agency).QueryOpen(request_pb, metadata=metadata(h.token(agency)), timeout=10)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == reason
    assert sorted_fields(refused.value) == [field_name]
    # Malformed input is not an inquiry: nothing is decided, so nothing is written.
    assert audit_log(h) == []
    assert count(h, SubjectRow) == subjects


# --- no path releases what the policy withholds ------------------------------------------------


def _nothing(world: World) -> None:
    pass


@dataclass(frozen=True)
class Path:
    call: Callable[[World], Any]
    released: tuple[str, ...]  # seed labels
    # What the answer says was withheld, and why. Record-level reasons (a disclosure period
    # ended, outside the consent's range) would reveal that such records exist: only the audit
    # entry (withheld_records, reasons) and the subject's own answer carry them.
    withheld: set[tuple[str, str, int]]
    withheld_records: int  # how many records the audit entry counts as withheld
    outcome: str = "PARTIAL"
    prepare: Callable[[World], None] = _nothing  # before the call, which must be audited alone

    def hidden(self) -> set[str]:
        return set(SEEDS) - set(self.released)


def _open(world: World) -> Any:
    agency = world.parties["agency"]
    return inquiry(agency).QueryOpen(
        query(
            COMPANY,
            "REG.ENTERPRISE",
            "ADM.PUNISHMENT",
            "ADM.PERMIT",
            "TAX.PAID",
            "SOC.INSURANCE_ARREARS",
        ),
        metadata=metadata(world.h.token(agency)),
        timeout=10,
    )


def _authorized(world: World) -> Any:
    agency = world.parties["agency"]
    request = inquiry_pb2.AuthorizedQueryRequest(
        query=query(
            PERSON,
            "ADM.PUNISHMENT",
            "ADM.PERMIT",
            "TAX.PAID",
            "REG.ENTERPRISE",
            "SOC.INSURANCE_ARREARS",
        ),
        consent_token=world.consent_token,
    )
    return inquiry(agency).QueryAuthorized(
        request, metadata=metadata(world.h.token(agency)), timeout=10
    )


def _government(world: World) -> Any:
    gov = world.parties["gov"]
    return inquiry(gov).ShareGovernment(
        query(
            PERSON,
            "ADM.PUNISHMENT",
            "SOC.INSURANCE_ARREARS",
            "ADM.PERMIT",
            "REG.ENTERPRISE",
            agreement=GOV_AGREEMENT,
            purpose="SUPERVISION",
        ),
        metadata=metadata(world.h.token(gov)),
        timeout=10,
    )


def _consent_to_recent_punishments(world: World) -> None:
    world.consent_token = grant_consent(
        world, categories=("administrative_punishment",), data_days=100
    )


def _archive_the_donation(world: World) -> None:
    archive(world.h, world.ids["p_vol"])


def _own(world: World) -> Any:
    return query_own(world)


PATHS = {
    # A company, open channel: past the disclosure period, outside the agreement (permits),
    # levels the open channel does not serve (AUTHORIZED tax paid, GOVERNMENT arrears).
    "QueryOpen": Path(
        _open,
        released=("c_reg", "c_pun"),
        withheld={
            ("ADM.PERMIT", "ITEM_NOT_AGREED", 0),
            ("TAX.PAID", "NOT_DISCLOSABLE_ON_CHANNEL", 0),
            ("SOC.INSURANCE_ARREARS", "NOT_DISCLOSABLE_ON_CHANNEL", 0),
        },
        withheld_records=1,
    ),
    # A person under a consent to punishments of the last 100 days: past the disclosure period,
    # outside the consent's data range, outside the agreement (permits), outside the consent
    # (tax paid), levels the channel does not serve (SELF registration, GOVERNMENT arrears).
    "QueryAuthorized": Path(
        _authorized,
        released=("p_pun",),
        withheld={
            ("ADM.PERMIT", "ITEM_NOT_AGREED", 0),
            ("TAX.PAID", "ITEM_NOT_CONSENTED", 0),
            ("REG.ENTERPRISE", "NOT_DISCLOSABLE_ON_CHANNEL", 0),
            ("SOC.INSURANCE_ARREARS", "NOT_DISCLOSABLE_ON_CHANNEL", 0),
        },
        withheld_records=2,
        prepare=_consent_to_recent_punishments,
    ),
    # A person, government sharing: past the disclosure period, outside the agreement (permits),
    # the SELF level (registration) that no department sees.
    "ShareGovernment": Path(
        _government,
        released=("p_pun", "p_pun_mid", "p_soc"),
        withheld={
            ("ADM.PERMIT", "ITEM_NOT_AGREED", 0),
            ("REG.ENTERPRISE", "NOT_DISCLOSABLE_ON_CHANNEL", 0),
        },
        withheld_records=1,
    ),
    # The person itself sees everything of its own as it stands, but not an archived record
    # (Art 30-31), nor anyone else's.
    "QueryOwn": Path(
        _own,
        released=("p_pun", "p_pun_mid", "p_pun_old", "p_permit", "p_tax", "p_reg", "p_soc"),
        withheld={("COM.VOLUNTEER", "NOT_IN_SERVICE", 1)},
        withheld_records=1,
        prepare=_archive_the_donation,
    ),
}


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_no_path_releases_a_record_the_policy_withholds(harness: Harness, path: Path) -> None:
    h = harness
    world = build_world(h)
    path.prepare(world)
    entries_before = len(audit_log(h))

    answer: common_pb2.QueryResponse = path.call(world)

    wire = answer.SerializeToString()
    assert {r.record_id for r in answer.records} == {world.ids[x] for x in path.released}
    for label in sorted(path.hidden()):
        assert world.ids[label].encode() not in wire, f"{label}: record id released"
        assert marker(label) not in wire, f"{label}: payload released"
    assert withheld(answer) == path.withheld
    new_entries = audit_log(h)[entries_before:]
    assert len(new_entries) == 1
    (entry,) = new_entries
    assert entry.outcome == path.outcome
    assert set(entry.body["released"]) == {world.ids[x] for x in path.released}
    assert entry.body["withheld"] == path.withheld_records
    # The audit entry names every reason the answer names, and the record-level ones the
    # answer leaves out so as not to reveal that such records exist.
    answered = {reason for _, reason, _ in path.withheld}
    record_level = {"DISCLOSURE_PERIOD_ENDED", "OUTSIDE_CONSENT_DATA_RANGE", "NOT_IN_SERVICE"}
    assert answered <= set(entry.body["reasons"])
    assert set(entry.body["reasons"]) - answered <= record_level


def sorted_fields(err: grpc.RpcError) -> list[str]:
    return sorted(field_violations(err))
