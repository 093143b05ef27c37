"""The kind of subject a query means (issue #11 items 1 and 5), over the real server.

`121101190408136711` is a valid resident identity number and a valid USCC (a public
institution's). A query that does not say which it means is refused and writes nothing; one that
says is answered as that subject, and the subject on record is never answered as the other kind.
An individual business (USCC type 92) is released at a natural person's level.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from support.audit_entries import inquiry_count
from support.harness import COMPANY, Harness, make_agreement, metadata, signed_record
from support.rpc import refusal
from support.scenario import count

from credit_gateway.adapters.grpc.convert import subject_kind_to_pb, to_timestamp
from credit_gateway.adapters.grpc.v1 import (
    common_pb2,
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2_grpc,
)
from credit_gateway.adapters.storage.tables import (
    ConsentRequestRow,
    QuotaUsageRow,
    SubjectRow,
)
from credit_gateway.domain.identifiers import (
    SubjectKind,
    organisation_code_check_character,
    uscc_check_character,
)

AMBIGUOUS = "121101190408136711"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
ALL_KINDS = tuple(k.value for k in SubjectKind)
PUNISHMENT = "ADM.PUNISHMENT"


def _individual_business() -> str:
    org = "MA0000A1" + organisation_code_check_character("MA0000A1")
    first17 = "92420100" + org
    return first17 + uscc_check_character(first17)


INDIVIDUAL_BUSINESS = _individual_business()


class Parties:
    """A providing unit, a credit agency and a government department, each under an agreement
    for punishment records of every kind of subject."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.provider = h.add_participant("hubei-amr", "providing-unit")
        self.agency = h.add_participant("zx-credit", "credit-agency")
        self.gov = h.add_participant("hubei-drc", "government-department")
        common: dict[str, Any] = {
            "categories": ("administrative_punishment",),
            "subject_kinds": ALL_KINDS,
        }
        make_agreement(h, self.agency, agreement_id="agr-agency", **common)
        make_agreement(
            h,
            self.gov,
            agreement_id="agr-gov",
            operations=("government_sharing",),
            purposes=("SUPERVISION",),
            levels=("open", "authorized", "government"),
            **common,
        )

    def submit(self, subject: str, kind: SubjectKind | None) -> str:
        """A punishment record about `subject`, submitted as about that kind of subject."""
        signed = signed_record(
            self.provider,
            record_id=f"r-{subject}-{kind.value if kind else None}",
            item=PUNISHMENT,
            subject=subject,
            payload=PAYLOAD,
            occurred_at=self.h.clock.now - timedelta(days=5),
            notice="N-1",
            kind=kind,
        )
        result = submission_pb2_grpc.SubmissionServiceStub(self.provider.channel).SubmitRecords(
            iter([signed]), metadata=metadata(self.h.token(self.provider)), timeout=10
        )
        assert result.accepted == 1, result
        return str(result.results[0].record_id)

    def query(
        self,
        method: str,
        subject: str,
        kind: SubjectKind | None,
        consent_token: str = "",
    ) -> common_pb2.QueryResponse:
        gov = method == "ShareGovernment"
        caller = self.gov if gov else self.agency
        request = inquiry_pb2.QueryRequest(
            subject_code=subject,
            subject_kind=subject_kind_to_pb(kind),
            item_codes=[PUNISHMENT],
            purpose="SUPERVISION" if gov else "LOAN_APPROVAL",
            agreement_id="agr-gov" if gov else "agr-agency",
        )
        stub = inquiry_pb2_grpc.InquiryServiceStub(caller.channel)
        md = metadata(self.h.token(caller))
        if method == "QueryAuthorized":
            authorized = inquiry_pb2.AuthorizedQueryRequest(
                query=request, consent_token=consent_token
            )
            return stub.QueryAuthorized(authorized, metadata=md, timeout=10)
        return getattr(stub, method)(request, metadata=md, timeout=10)  # type: ignore[no-any-return]

    def written(self) -> tuple[int, int, int]:
        """Audit entries, subjects, and calls counted on any agreement."""
        with self.h.db.transaction(write=False) as session:
            calls = session.scalar(select(func.coalesce(func.sum(QuotaUsageRow.calls), 0)))
        return inquiry_count(self.h.db), count(self.h.db, SubjectRow), int(calls or 0)

    def kinds(self) -> list[str]:
        with self.h.db.transaction(write=False) as session:
            return list(session.scalars(select(SubjectRow.kind)))


PAYLOAD = {
    "decision_no": "D-kind",
    "violation": "unlicensed trading",
    "penalty": "fine",
    "decided_on": "2026-01-02",
    "authority": "Wuhan AMR",
}


@pytest.fixture
def parties(harness: Harness) -> Parties:
    return Parties(harness)


@pytest.mark.parametrize("method", ["QueryOpen", "QueryAuthorized", "ShareGovernment"])
def test_an_ambiguous_code_without_a_kind_is_refused_and_writes_nothing(
    parties: Parties, method: str
) -> None:
    before = parties.written()
    assert refusal(lambda: parties.query(method, AMBIGUOUS, None, "a token")) == (
        INVALID,
        "SUBJECT_KIND_REQUIRED",
    )
    assert parties.written() == before == (0, 0, 0)


def test_a_kind_the_code_cannot_be_is_refused_and_writes_nothing(parties: Parties) -> None:
    # COMPANY is a USCC only: not a resident id.
    assert refusal(lambda: parties.query("QueryOpen", COMPANY, SubjectKind.NATURAL_PERSON)) == (
        INVALID,
        "SUBJECT_KIND_MISMATCH",
    )
    assert parties.written() == (0, 0, 0)


# As a legal person the punishment is open (released); as a natural person it is not open, and
# a query asking for nothing else is refused for it (Art 17 para 2).
OTHER = {
    SubjectKind.LEGAL_PERSON: SubjectKind.NATURAL_PERSON,
    SubjectKind.NATURAL_PERSON: SubjectKind.LEGAL_PERSON,
}
NOT_OPEN = (grpc.StatusCode.PERMISSION_DENIED, "NOT_DISCLOSABLE_ON_CHANNEL")


def open_answer(parties: Parties, subject: str, kind: SubjectKind | None) -> Any:
    """The released record ids, or the refusal."""
    try:
        answer = parties.query("QueryOpen", subject, kind)
    except grpc.RpcError:
        return refusal(lambda: parties.query("QueryOpen", subject, kind))
    return [r.record_id for r in answer.records]


@pytest.mark.parametrize("kind", OTHER, ids=lambda k: k.value)
def test_an_ambiguous_code_with_a_kind_is_answered_as_that_subject_only(
    parties: Parties, kind: SubjectKind
) -> None:
    record_id = parties.submit(AMBIGUOUS, kind)
    opened = open_answer(parties, AMBIGUOUS, kind)
    assert opened == ([record_id] if kind is SubjectKind.LEGAL_PERSON else NOT_OPEN)
    shared = parties.query("ShareGovernment", AMBIGUOUS, kind)
    assert [r.record_id for r in shared.records] == [record_id]
    assert parties.kinds() == [kind.value]
    # The subject on record is this kind: asked for as the other, refused, nothing written.
    before = parties.written()
    for method in ("QueryOpen", "ShareGovernment"):
        assert refusal(lambda: parties.query(method, AMBIGUOUS, OTHER[kind])) == (  # noqa: B023
            INVALID,
            "SUBJECT_KIND_MISMATCH",
        )
    assert parties.written() == before
    assert parties.kinds() == [kind.value]


def test_an_individual_business_is_released_at_a_natural_persons_level(
    parties: Parties,
) -> None:
    person_like = parties.submit(INDIVIDUAL_BUSINESS, None)  # a 92 code: one kind only
    company = parties.submit(COMPANY, None)
    assert SubjectKind.INDIVIDUAL_BUSINESS.value in parties.kinds()
    assert open_answer(parties, COMPANY, None) == [company]
    assert open_answer(parties, INDIVIDUAL_BUSINESS, None) == NOT_OPEN
    assert open_answer(parties, INDIVIDUAL_BUSINESS, SubjectKind.INDIVIDUAL_BUSINESS) == NOT_OPEN
    # A government department sees it, as it sees a person's.
    shared = parties.query("ShareGovernment", INDIVIDUAL_BUSINESS, None)
    assert [r.record_id for r in shared.records] == [person_like]


# --- consent requests --------------------------------------------------------------------------


def ask(parties: Parties, kind: SubjectKind | None) -> consent_pb2.ConsentRequest:
    now = parties.h.clock.now
    terms = consent_pb2.ConsentTerms(
        grantee=parties.agency.id,
        purpose_code="LOAN_APPROVAL",
        purpose_text="mortgage",
        item_codes=[PUNISHMENT],
        data_from=to_timestamp(now - timedelta(days=365)),
        data_to=to_timestamp(now + timedelta(days=1)),
        valid_from=to_timestamp(now - timedelta(minutes=1)),
        valid_until=to_timestamp(now + timedelta(days=30)),
        max_uses=1,
    )
    request = consent_pb2.RequestConsentRequest(
        subject_code=AMBIGUOUS, subject_kind=subject_kind_to_pb(kind), terms=terms
    )
    stub = consent_pb2_grpc.ConsentServiceStub(parties.agency.channel)
    return stub.RequestConsent(request, metadata=metadata(parties.h.token(parties.agency)))


def test_a_consent_request_says_which_subject_it_asks(parties: Parties) -> None:
    assert refusal(lambda: ask(parties, None)) == (INVALID, "SUBJECT_KIND_REQUIRED")
    assert parties.written() == (0, 0, 0)
    assert count(parties.h.db, ConsentRequestRow) == 0

    made = ask(parties, SubjectKind.LEGAL_PERSON)
    assert (made.subject_code, made.subject_kind) == (
        AMBIGUOUS,
        common_pb2.SUBJECT_KIND_LEGAL_PERSON,
    )
    assert parties.kinds() == [SubjectKind.LEGAL_PERSON.value]
    # The person whose identity number the code also is (a portal asserts persons) is not the
    # institution on record: its requests are not the person's to see.
    portal = parties.h.add_participant("realname-portal", "identity-provider")
    person = consent_pb2_grpc.ConsentServiceStub(portal.channel)
    listing = consent_pb2.ListConsentRequestsRequest()
    md = metadata(parties.h.subject_token(portal, AMBIGUOUS))
    assert refusal(lambda: person.ListConsentRequests(listing, metadata=md)) == (
        INVALID,
        "SUBJECT_KIND_MISMATCH",
    )
    assert count(parties.h.db, ConsentRequestRow) == 1


def test_a_watched_consent_request_names_its_subjects_kind(parties: Parties) -> None:
    stub = consent_pb2_grpc.ConsentServiceStub(parties.agency.channel)
    stream = stub.WatchConsents(
        consent_pb2.WatchConsentsRequest(),
        metadata=metadata(parties.h.token(parties.agency)),
        timeout=10,
    )
    events = iter(stream)
    time.sleep(0.5)  # subscribed before the request is made
    ask(parties, SubjectKind.LEGAL_PERSON)
    event = next(events)
    stream.cancel()
    assert (event.request.subject_code, event.request.subject_kind) == (
        AMBIGUOUS,
        common_pb2.SUBJECT_KIND_LEGAL_PERSON,
    )
