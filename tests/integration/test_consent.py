"""ConsentService and consent-scoped inquiry (Art 19-20) over the real server, on every backend.

The subject acts through a real-name portal with a subject token; the agency calls with its own
certificate and token. Every refusal is checked for its status, its ErrorInfo reason, the audit
entry that records it, and that no consent changed (nothing was released or counted).
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import func, select
from support.harness import (
    PERSON,
    Harness,
    Participant,
    make_agreement,
    metadata,
    signed_record,
)
from support.rpc import field_violations, status_of

from credit_gateway.adapters.grpc import convert
from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.v1 import (
    common_pb2,
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2_grpc,
)
from credit_gateway.adapters.storage import consents as consent_store
from credit_gateway.adapters.storage import keys as key_store
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage import trust
from credit_gateway.adapters.storage.tables import AuditEntryRow, ConsentEventRow, ConsentRow
from credit_gateway.crypto.signatures import sign_es256
from credit_gateway.domain.consent import artefact_bytes

PERSON2 = "420106198501011233"  # a second natural person (valid GB 11643 check character)
AGREEMENT = "agr-zx-credit"
DENIED = grpc.StatusCode.PERMISSION_DENIED


# --- reading refusals --------------------------------------------------------------------------


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return status_of(caught.value)


# --- the world every test starts from -----------------------------------------------------------


@dataclass
class World:
    """A gateway with records about PERSON, an agency with an agreement, and a real-name portal."""

    h: Harness
    agency: Participant
    portal: Participant

    @property
    def consents(self) -> consent_pb2_grpc.ConsentServiceStub:
        return consent_pb2_grpc.ConsentServiceStub(self.portal.channel)

    def subject_md(self, code: str = PERSON) -> tuple[tuple[str, str], ...]:
        return metadata(self.h.subject_token(self.portal, code))

    def md(self, participant: Participant | None = None) -> tuple[tuple[str, str], ...]:
        return metadata(self.h.token(participant or self.agency))

    def terms(self, **overrides: Any) -> consent_pb2.ConsentTerms:
        now = self.h.clock.now
        fields: dict[str, Any] = {
            "grantee": self.agency.id,
            "purpose_code": "LOAN_APPROVAL",
            "purpose_text": "mortgage application",
            "item_codes": ["ADM.PUNISHMENT", "TAX.PAID"],
            "categories": [],
            "data_from": to_timestamp(now - timedelta(days=365)),
            "data_to": to_timestamp(now + timedelta(days=1)),
            "valid_from": to_timestamp(now - timedelta(minutes=1)),
            "valid_until": to_timestamp(now + timedelta(days=30)),
            "max_uses": 5,
        }
        fields.update(overrides)
        return consent_pb2.ConsentTerms(**fields)

    def grant(self, subject: str = PERSON, **overrides: Any) -> consent_pb2.GrantConsentResponse:
        request = consent_pb2.GrantConsentRequest(terms=self.terms(**overrides))
        return self.consents.GrantConsent(request, metadata=self.subject_md(subject), timeout=10)

    def get(self, consent_id: str, subject: str = PERSON) -> consent_pb2.Consent:
        return self.consents.GetConsent(
            consent_pb2.ConsentRef(consent_id=consent_id),
            metadata=self.subject_md(subject),
            timeout=10,
        )

    def change(self, method: str, consent_id: str, subject: str = PERSON) -> consent_pb2.Consent:
        rpc = getattr(self.consents, method)
        return cast(
            consent_pb2.Consent,
            rpc(
                consent_pb2.ConsentRef(consent_id=consent_id),
                metadata=self.subject_md(subject),
                timeout=10,
            ),
        )

    def query(
        self,
        token: str | None,
        *,
        items: tuple[str, ...] = ("ADM.PUNISHMENT",),
        purpose: str = "LOAN_APPROVAL",
        subject: str = PERSON,
        caller: Participant | None = None,
        agreement_id: str = AGREEMENT,
    ) -> common_pb2.QueryResponse:
        caller = caller or self.agency
        request = inquiry_pb2.AuthorizedQueryRequest(
            query=inquiry_pb2.QueryRequest(
                subject_code=subject,
                purpose=purpose,
                agreement_id=agreement_id,
                item_codes=list(items),
            ),
            consent_token=token or "",
        )
        return inquiry_pb2_grpc.InquiryServiceStub(caller.channel).QueryAuthorized(
            request, metadata=self.md(caller), timeout=10
        )

    def assert_query_refused(self, token: str | None, reason: str, **kwargs: Any) -> None:
        """PERMISSION_DENIED with `reason`, one REFUSED audit entry naming it, nothing released,
        and no consent changed (no use counted, no status moved)."""
        consents_before, audit_before = self.consent_rows(), self.audit()
        assert refusal(lambda: self.query(token, **kwargs)) == (DENIED, reason)
        audit = self.audit()
        assert len(audit) == len(audit_before) + 1
        entry = audit[-1]
        assert (entry["outcome"], entry["reasons"], entry["released"]) == ("REFUSED", [reason], [])
        assert entry["method"] == "QueryAuthorized"
        assert self.consent_rows() == consents_before

    # --- what the database holds -------------------------------------------------------------
    def audit(self) -> list[dict[str, Any]]:
        with self.h.db.transaction(write=False) as session:
            bodies = session.scalars(select(AuditEntryRow.body).order_by(AuditEntryRow.seq))
            return [json.loads(b) for b in bodies]

    def consent_rows(self) -> dict[str, tuple[str, int]]:
        with self.h.db.transaction(write=False) as session:
            rows = session.execute(select(ConsentRow.id, ConsentRow.status, ConsentRow.uses))
            return {cid: (status, uses) for cid, status, uses in rows}

    def count(self, table: type[Any]) -> int:
        with self.h.db.transaction(write=False) as session:
            return int(session.scalar(select(func.count()).select_from(table)) or 0)

    def subject_id(self, code: str = PERSON) -> str:
        with self.h.db.transaction(write=False) as session:
            found = record_store.find_subject(session, self.h.gateway.subject_lookup(code))
        assert found is not None
        return found.id


@pytest.fixture
def world(harness: Harness) -> World:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    tax = h.add_participant("hubei-tax", "providing-unit")
    agency = h.add_participant("zx-credit", "credit-agency")
    portal = h.add_participant("realname-portal", "identity-provider")
    make_agreement(
        h,
        agency,
        agreement_id=AGREEMENT,
        categories=("administrative_punishment", "administrative_other", "joint_discipline_list"),
        purposes=("LOAN_APPROVAL", "EMPLOYMENT_SCREENING"),
    )
    now = h.clock.now
    punishment = {
        "decision_no": "E-1",
        "violation": "v",
        "penalty": "fine",
        "decided_on": "2026-01-02",
        "authority": "AMR",
    }
    # (provider, record id, item, payload, notice of untrustworthiness information)
    records: list[tuple[Participant, str, str, dict[str, Any], str]] = [
        (amr, "amr-1", "ADM.PUNISHMENT", punishment, "N-1"),
        (tax, "tax-1", "TAX.PAID", {"year": 2025, "amount_cny": 1234.5}, ""),
        (tax, "tax-2", "TAX.ARREARS", {"amount_cny": 10.0, "since": "2026-01-01"}, "N-2"),
    ]
    for provider, rid, item, payload, notice in records:
        record = signed_record(
            provider,
            record_id=rid,
            item=item,
            subject=PERSON,
            payload=payload,
            occurred_at=now - timedelta(days=5),
            notice=notice,
        )
        result = submission_pb2_grpc.SubmissionServiceStub(provider.channel).SubmitRecords(
            iter([record]), metadata=metadata(h.token(provider)), timeout=10
        )
        assert result.accepted == 1, result
    return World(h, agency, portal)


def other_agency(w: World, agency_id: str = "other-credit", **agreement: Any) -> Participant:
    """A second credit agency with an agreement of its own (authorized inquiry by default)."""
    other = w.h.add_participant(agency_id, "credit-agency")
    make_agreement(
        w.h,
        other,
        agreement_id=f"agr-{agency_id}",
        categories=("administrative_punishment", "administrative_other"),
        **agreement,
    )
    return other


# --- the whole story ----------------------------------------------------------------------------


def test_grant_query_revoke_query_is_visible_to_the_subject(world: World) -> None:
    w = world
    granted = w.grant()
    consent_id = granted.consent.consent_id
    assert granted.consent.status == consent_pb2.CONSENT_STATUS_ACTIVE
    assert granted.consent.evidence == "real_name_assertion"

    answer = w.query(granted.token.token)
    assert [r.item_code for r in answer.records] == ["ADM.PUNISHMENT"]
    assert answer.consent_id == consent_id
    assert "NO_ONWARD_DISCLOSURE" in answer.conditions
    assert w.get(consent_id).uses == 1

    w.change("RevokeConsent", consent_id)
    w.assert_query_refused(granted.token.token, "CONSENT_REVOKED")
    assert w.get(consent_id).status == consent_pb2.CONSENT_STATUS_REVOKED

    # An inquiry made under no consent: the filter below must leave it out.
    inquiry = inquiry_pb2_grpc.InquiryServiceStub(w.agency.channel)
    inquiry.QueryOpen(
        inquiry_pb2.QueryRequest(
            subject_code=PERSON, purpose="LOAN_APPROVAL", agreement_id=AGREEMENT
        ),
        metadata=w.md(),
        timeout=10,
    )

    everything = w.consents.ListInquiries(
        consent_pb2.ListInquiriesRequest(), metadata=w.subject_md(), timeout=10
    ).inquiries
    assert [e.method for e in everything] == ["QueryOpen", "QueryAuthorized", "QueryAuthorized"]
    under_consent = w.consents.ListInquiries(
        consent_pb2.ListInquiriesRequest(consent_id=consent_id), metadata=w.subject_md(), timeout=10
    ).inquiries
    assert [(e.outcome, list(e.reasons), e.released_count) for e in under_consent] == [
        ("REFUSED", ["CONSENT_REVOKED"], 0),
        ("RELEASED", [], 1),
    ]
    assert {(e.caller, e.consent_id, e.agreement_id, e.purpose) for e in under_consent} == {
        (w.agency.id, consent_id, AGREEMENT, "LOAN_APPROVAL")
    }


# --- consent requests ---------------------------------------------------------------------------


def _request(w: World) -> consent_pb2.ConsentRequest:
    return consent_pb2_grpc.ConsentServiceStub(w.agency.channel).RequestConsent(
        consent_pb2.RequestConsentRequest(subject_code=PERSON, terms=w.terms(grantee="")),
        metadata=w.md(),
        timeout=10,
    )


def test_agency_request_approved_by_subject_gives_a_usable_token(world: World) -> None:
    w = world
    asked = _request(w)
    assert asked.status == consent_pb2.CONSENT_REQUEST_STATUS_PENDING

    pending = w.consents.ListConsentRequests(
        consent_pb2.ListConsentRequestsRequest(), metadata=w.subject_md(), timeout=10
    ).requests
    assert [(r.request_id, r.status, r.terms.grantee) for r in pending] == [
        (asked.request_id, consent_pb2.CONSENT_REQUEST_STATUS_PENDING, w.agency.id)
    ]

    approved = w.consents.ApproveConsentRequest(
        consent_pb2.ApproveConsentRequestRequest(request_id=asked.request_id),
        metadata=w.subject_md(),
        timeout=10,
    )
    consent_id = approved.consent.consent_id
    assert approved.token.token
    assert approved.token.consent_id == consent_id
    assert approved.consent.status == consent_pb2.CONSENT_STATUS_ACTIVE

    decided = w.consents.ListConsentRequests(
        consent_pb2.ListConsentRequestsRequest(), metadata=w.subject_md(), timeout=10
    ).requests
    assert [(r.status, r.consent_id) for r in decided] == [
        (consent_pb2.CONSENT_REQUEST_STATUS_APPROVED, consent_id)
    ]

    fetched = consent_pb2_grpc.ConsentServiceStub(w.agency.channel).GetConsentToken(
        consent_pb2.ConsentRef(consent_id=consent_id), metadata=w.md(), timeout=10
    )
    assert fetched.consent_id == consent_id
    answer = w.query(fetched.token)
    assert [r.item_code for r in answer.records] == ["ADM.PUNISHMENT"]
    assert answer.consent_id == consent_id


def test_rejected_request_cannot_be_approved_afterwards(world: World) -> None:
    w = world
    asked = _request(w)
    rejected = w.consents.RejectConsentRequest(
        consent_pb2.ConsentRequestRef(request_id=asked.request_id),
        metadata=w.subject_md(),
        timeout=10,
    )
    assert rejected.status == consent_pb2.CONSENT_REQUEST_STATUS_REJECTED

    approve = consent_pb2.ApproveConsentRequestRequest(request_id=asked.request_id)
    assert refusal(
        lambda: w.consents.ApproveConsentRequest(approve, metadata=w.subject_md(), timeout=10)
    ) == (grpc.StatusCode.FAILED_PRECONDITION, "CONSENT_REQUEST_DECIDED")
    assert w.consent_rows() == {}  # no consent came of it
    listed = w.consents.ListConsentRequests(
        consent_pb2.ListConsentRequestsRequest(), metadata=w.subject_md(), timeout=10
    ).requests
    assert [(r.status, r.consent_id) for r in listed] == [
        (consent_pb2.CONSENT_REQUEST_STATUS_REJECTED, "")
    ]


# --- the grantee's watch ------------------------------------------------------------------------


def test_watch_sees_a_revocation_within_a_second(world: World) -> None:
    w = world
    consent_id = w.grant().consent.consent_id
    events: queue.Queue[tuple[float, consent_pb2.ConsentEvent]] = queue.Queue()
    stream = consent_pb2_grpc.ConsentServiceStub(w.agency.channel).WatchConsents(
        consent_pb2.WatchConsentsRequest(), metadata=w.md(), timeout=60
    )

    ended: list[grpc.StatusCode] = []

    def read() -> None:
        try:
            for event in stream:
                events.put((time.monotonic(), event))
        except grpc.RpcError as exc:  # cancelled at the end of the test
            ended.append(cast(grpc.Call, exc).code())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # The watch starts from "now" when the server takes the call, which this side cannot
        # observe: pause and resume until an event shows the stream is live, then let it settle.
        paused = False
        for _ in range(20):
            paused = not paused
            w.change("PauseConsent" if paused else "ResumeConsent", consent_id)
            try:
                events.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        else:
            pytest.fail("the watch never delivered an event")
        while True:
            try:
                events.get(timeout=0.3)
            except queue.Empty:
                break

        w.change("RevokeConsent", consent_id)
        revoked_at = time.monotonic()
        seen_at, event = events.get(timeout=5)
        assert event.WhichOneof("event") == "consent"
        assert event.consent.consent_id == consent_id
        assert event.consent.status == consent_pb2.CONSENT_STATUS_REVOKED
        assert event.consent.subject_code == PERSON
        assert seen_at - revoked_at < 1.0
    finally:
        stream.cancel()
        reader.join(timeout=5)
    assert not reader.is_alive()
    assert ended == [grpc.StatusCode.CANCELLED]


# --- refusals of an authorized inquiry ----------------------------------------------------------


def test_paused_consent_is_refused_until_resumed(world: World) -> None:
    w = world
    granted = w.grant()
    w.change("PauseConsent", granted.consent.consent_id)
    w.assert_query_refused(granted.token.token, "CONSENT_PAUSED")

    w.change("ResumeConsent", granted.consent.consent_id)
    assert [r.item_code for r in w.query(granted.token.token).records] == ["ADM.PUNISHMENT"]


def test_expired_consent_is_refused(world: World) -> None:
    w = world
    granted = w.grant()
    w.h.clock.advance(days=30, seconds=1)  # past valid_until
    w.assert_query_refused(granted.token.token, "CONSENT_EXPIRED")
    assert w.get(granted.consent.consent_id).status == consent_pb2.CONSENT_STATUS_EXPIRED


def test_refusal_of_an_expired_consent_is_listed_under_that_consent(world: World) -> None:
    w = world
    granted = w.grant()
    consent_id = granted.consent.consent_id
    w.h.clock.advance(days=30, seconds=1)
    w.assert_query_refused(granted.token.token, "CONSENT_EXPIRED")
    listed = w.consents.ListInquiries(
        consent_pb2.ListInquiriesRequest(consent_id=consent_id), metadata=w.subject_md(), timeout=10
    ).inquiries
    assert [(e.outcome, list(e.reasons)) for e in listed] == [("REFUSED", ["CONSENT_EXPIRED"])]


def test_consent_not_yet_valid_is_refused(world: World) -> None:
    w = world
    now = w.h.clock.now
    granted = w.grant(
        valid_from=to_timestamp(now + timedelta(days=1)),
        valid_until=to_timestamp(now + timedelta(days=30)),
    )
    w.assert_query_refused(granted.token.token, "CONSENT_NOT_YET_VALID")


def test_exhausted_consent_is_refused_and_shown_exhausted(world: World) -> None:
    w = world
    granted = w.grant(max_uses=1)
    assert len(w.query(granted.token.token).records) == 1
    w.assert_query_refused(granted.token.token, "CONSENT_EXHAUSTED")
    shown = w.get(granted.consent.consent_id)
    assert (shown.status, shown.uses) == (consent_pb2.CONSENT_STATUS_EXHAUSTED, 1)


def test_stolen_token_presented_by_another_agency_is_refused(world: World) -> None:
    w = world
    thief = other_agency(w)
    granted = w.grant()  # granted to zx-credit, not to the thief
    w.assert_query_refused(
        granted.token.token,
        "CONSENT_OTHER_GRANTEE",
        caller=thief,
        agreement_id="agr-other-credit",
    )
    assert w.audit()[-1]["caller"] == thief.id
    # The subject sees the attempt under its consent.
    listed = w.consents.ListInquiries(
        consent_pb2.ListInquiriesRequest(consent_id=granted.consent.consent_id),
        metadata=w.subject_md(),
        timeout=10,
    ).inquiries
    assert [(e.caller, e.outcome, list(e.reasons)) for e in listed] == [
        (thief.id, "REFUSED", ["CONSENT_OTHER_GRANTEE"])
    ]


def test_purpose_outside_the_consent_is_refused(world: World) -> None:
    w = world
    granted = w.grant()  # LOAN_APPROVAL; the agreement also allows EMPLOYMENT_SCREENING
    w.assert_query_refused(
        granted.token.token, "PURPOSE_NOT_CONSENTED", purpose="EMPLOYMENT_SCREENING"
    )


def test_item_outside_the_consent_is_refused(world: World) -> None:
    w = world
    granted = w.grant(item_codes=["ADM.PUNISHMENT"])  # not TAX.ARREARS, which the agreement covers
    w.assert_query_refused(granted.token.token, "ITEM_NOT_CONSENTED", items=("TAX.ARREARS",))


def test_forged_consent_token_is_refused(world: World) -> None:
    w = world
    real = w.grant().token.token
    header, claims = (_jws_part(real, i) for i in (0, 1))
    own_key = ECKey.generate_key("P-256")
    forged = jwt.encode(header, claims, own_key, algorithms=["ES256"])  # same kid, our key
    w.assert_query_refused(forged, "CONSENT_TOKEN_INVALID")


def test_token_signed_by_a_retired_key_is_refused_after_expiry(world: World) -> None:
    w = world
    granted = w.grant()
    _rotate(w)  # the signing key becomes "previous": its tokens still verify
    assert len(w.query(granted.token.token).records) == 1
    _rotate(w)  # ... and now retired
    w.h.clock.advance(days=30, seconds=1)
    # The signature is checked before the expiry, and no key in the ring made it.
    w.assert_query_refused(granted.token.token, "CONSENT_TOKEN_INVALID")


def test_consent_of_another_subject_is_refused(world: World) -> None:
    w = world
    theirs = w.grant(subject=PERSON2)
    w.assert_query_refused(theirs.token.token, "CONSENT_OTHER_SUBJECT", subject=PERSON)
    # The consent's owner sees its consent used against someone else.
    listed = w.consents.ListInquiries(
        consent_pb2.ListInquiriesRequest(consent_id=theirs.consent.consent_id),
        metadata=w.subject_md(PERSON2),
        timeout=10,
    ).inquiries
    assert [(e.outcome, list(e.reasons)) for e in listed] == [
        ("REFUSED", ["CONSENT_OTHER_SUBJECT"])
    ]


def test_query_without_consent_token_is_refused(world: World) -> None:
    w = world
    w.grant()
    w.assert_query_refused(None, "CONSENT_REQUIRED")


def _jws_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _rotate(w: World) -> None:
    with w.h.db.transaction() as session:
        key_store.rotate_signing_key(session, w.h.gateway.master, w.h.clock.now)
    w.h.gateway.reload_keys()


# --- what a grant must meet ---------------------------------------------------------------------


def _days_of_validity(days: int) -> Callable[[datetime], dict[str, Any]]:
    return lambda now: {
        "valid_from": to_timestamp(now),
        "valid_until": to_timestamp(now + timedelta(days=days)),
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (lambda now: {"purpose_code": "MARKETING"}, "terms.purpose_code"),
        (_days_of_validity(91), "terms.valid_until"),  # LOAN_APPROVAL allows 90 days
        (lambda now: {"max_uses": 13}, "terms.max_uses"),  # LOAN_APPROVAL allows 12
    ],
    ids=["purpose-not-listed", "validity-too-long", "too-many-uses"],
)
def test_grant_outside_the_purpose_rules_is_invalid(
    world: World, overrides: Callable[[datetime], dict[str, Any]], field: str
) -> None:
    w = world
    with pytest.raises(grpc.RpcError) as caught:
        w.grant(**overrides(w.h.clock.now))
    assert status_of(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "CONSENT_TERMS_INVALID")
    assert field in field_violations(caught.value)
    assert (w.count(ConsentRow), w.count(ConsentEventRow)) == (0, 0)


def test_written_consent_item_is_not_covered_by_its_category(world: World) -> None:
    w = world
    granted = w.grant(item_codes=[], categories=["administrative_other"])
    # The category covers its ordinary items...
    assert [r.item_code for r in w.query(granted.token.token, items=("TAX.ARREARS",)).records] == [
        "TAX.ARREARS"
    ]
    # ...but an Art 16 written-consent item only when named one by one.
    w.assert_query_refused(granted.token.token, "ITEM_NOT_CONSENTED", items=("TAX.PAID",))


def test_overlong_purpose_text_is_invalid(world: World) -> None:
    w = world
    with pytest.raises(grpc.RpcError) as caught:
        w.grant(purpose_text="x" * 600)
    assert status_of(caught.value)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert "terms.purpose_text" in field_violations(caught.value)
    assert w.count(ConsentRow) == 0


@pytest.mark.parametrize(
    "grantee", ["open-only-agency", "unlicensed-agency", "realname-portal", "nobody"]
)
def test_grant_to_a_grantee_without_authorized_inquiry_is_invalid(
    world: World, grantee: str
) -> None:
    w = world
    if grantee == "open-only-agency":  # an agreement, but for open information only
        other_agency(w, grantee, levels=("open",))
    if grantee == "unlicensed-agency":  # an agreement, but its licence has lapsed (Art 20)
        other_agency(w, grantee)
        with w.h.db.transaction() as session:
            trust.set_licence(session, grantee, valid_until=w.h.clock.now - timedelta(days=1))
    with pytest.raises(grpc.RpcError) as caught:
        w.grant(grantee=grantee)
    assert status_of(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "GRANTEE_NOT_ELIGIBLE")
    assert field_violations(caught.value) == {"terms.grantee"}
    assert (w.count(ConsentRow), w.count(ConsentEventRow)) == (0, 0)


# --- signed written consent ---------------------------------------------------------------------


def test_signature_without_a_registered_key_is_refused(world: World) -> None:
    # Stored unverified, it would later look like proof that the subject signed.
    w = world
    request = consent_pb2.GrantConsentRequest(terms=w.terms(), subject_signature=b"\x01" * 64)
    with pytest.raises(grpc.RpcError) as caught:
        w.consents.GrantConsent(request, metadata=w.subject_md(), timeout=10)
    assert status_of(caught.value) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "SUBJECT_KEY_NOT_REGISTERED",
    )
    assert (w.count(ConsentRow), w.count(ConsentEventRow)) == (0, 0)


@dataclass
class SubjectKey:
    private: ec.EllipticCurvePrivateKey
    kid: str


@pytest.fixture
def subject_key(world: World) -> SubjectKey:
    """PERSON registers a P-256 key (no RPC yet: set on the subject row the first grant made)."""
    world.grant()
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECKey.import_key(private.public_key())
    with world.h.db.transaction() as session:
        record_store.set_subject_key(
            session, world.subject_id(), json.dumps(jwk.as_dict(private=False))
        )
    return SubjectKey(private, jwk.thumbprint())


def _signed_request(
    w: World, key: ec.EllipticCurvePrivateKey | None, kid: str, **overrides: Any
) -> consent_pb2.GrantConsentRequest:
    terms = w.terms(**overrides)
    signature = b""
    if key is not None:
        signature = sign_es256(key, artefact_bytes(PERSON, convert.terms_from_pb(terms)))
    return consent_pb2.GrantConsentRequest(
        terms=terms, subject_signature=signature, subject_key_id=kid
    )


def test_subject_with_a_key_must_sign(world: World, subject_key: SubjectKey) -> None:
    w = world
    before = w.consent_rows()
    request = _signed_request(w, None, "")
    assert refusal(
        lambda: w.consents.GrantConsent(request, metadata=w.subject_md(), timeout=10)
    ) == (DENIED, "SUBJECT_SIGNATURE_REQUIRED")
    assert w.consent_rows() == before


def test_signed_consent_is_granted_with_signature_evidence(
    world: World, subject_key: SubjectKey
) -> None:
    w = world
    request = _signed_request(w, subject_key.private, subject_key.kid)
    granted = w.consents.GrantConsent(request, metadata=w.subject_md(), timeout=10)
    assert granted.consent.evidence == "subject_signature"
    with w.h.db.transaction(write=False) as session:
        stored = session.get(ConsentRow, granted.consent.consent_id)
        assert stored is not None
        assert stored.subject_signature == request.subject_signature
        # The evidence: sealed at rest, it opens to exactly the bytes the subject signed.
        signed = artefact_bytes(PERSON, convert.terms_from_pb(request.terms))
        assert signed not in stored.artefact_sealed
        assert consent_store.artefact(session, w.h.gateway.envelope, stored.id) == signed
    assert len(w.query(granted.token.token).records) == 1


def test_signature_by_another_key_is_refused(world: World, subject_key: SubjectKey) -> None:
    w = world
    before = w.consent_rows()
    impostor = ec.generate_private_key(ec.SECP256R1())
    request = _signed_request(w, impostor, subject_key.kid)
    assert refusal(
        lambda: w.consents.GrantConsent(request, metadata=w.subject_md(), timeout=10)
    ) == (DENIED, "SUBJECT_SIGNATURE_INVALID")
    assert w.consent_rows() == before


def test_signature_naming_an_unregistered_key_is_refused_like_any_bad_signature(
    world: World, subject_key: SubjectKey
) -> None:
    w = world
    before = w.consent_rows()
    request = _signed_request(w, subject_key.private, "not-a-registered-key")
    assert refusal(
        lambda: w.consents.GrantConsent(request, metadata=w.subject_md(), timeout=10)
    ) == (DENIED, "SUBJECT_SIGNATURE_INVALID")
    assert w.consent_rows() == before


def test_keyed_subject_approves_a_request_by_signing_the_terms_it_was_shown(
    world: World, subject_key: SubjectKey
) -> None:
    w = world
    asked = _request(w)
    shown = w.consents.ListConsentRequests(
        consent_pb2.ListConsentRequestsRequest(
            statuses=[consent_pb2.CONSENT_REQUEST_STATUS_PENDING]
        ),
        metadata=w.subject_md(),
        timeout=10,
    ).requests
    assert [r.request_id for r in shown] == [asked.request_id]
    signature = sign_es256(
        subject_key.private, artefact_bytes(PERSON, convert.terms_from_pb(shown[0].terms))
    )
    approved = w.consents.ApproveConsentRequest(
        consent_pb2.ApproveConsentRequestRequest(
            request_id=asked.request_id, subject_signature=signature, subject_key_id=subject_key.kid
        ),
        metadata=w.subject_md(),
        timeout=10,
    )
    assert approved.consent.evidence == "subject_signature"
    assert len(w.query(approved.token.token).records) == 1


def test_signature_over_other_terms_is_refused(world: World, subject_key: SubjectKey) -> None:
    w = world
    before = w.consent_rows()
    signed = _signed_request(w, subject_key.private, subject_key.kid, max_uses=1)
    request = consent_pb2.GrantConsentRequest(
        terms=w.terms(max_uses=5),  # the gateway is asked for more than was signed
        subject_signature=signed.subject_signature,
        subject_key_id=subject_key.kid,
    )
    assert refusal(
        lambda: w.consents.GrantConsent(request, metadata=w.subject_md(), timeout=10)
    ) == (DENIED, "SUBJECT_SIGNATURE_INVALID")
    assert w.consent_rows() == before


# --- one subject cannot touch another's consent -------------------------------------------------


@pytest.mark.parametrize("method", ["GetConsent", "RevokeConsent", "PauseConsent", "ResumeConsent"])
def test_subject_cannot_act_on_another_subjects_consent(world: World, method: str) -> None:
    w = world
    theirs = w.grant(subject=PERSON2).consent.consent_id
    w.grant()  # PERSON exists as a subject too: the refusal is about ownership, not absence
    before = w.consent_rows()
    assert refusal(lambda: w.change(method, theirs, subject=PERSON)) == (
        grpc.StatusCode.NOT_FOUND,
        "CONSENT_NOT_FOUND",
    )
    assert w.consent_rows() == before


def test_subject_cannot_list_inquiries_under_another_subjects_consent(world: World) -> None:
    w = world
    theirs = w.grant(subject=PERSON2).consent.consent_id
    w.grant()
    request = consent_pb2.ListInquiriesRequest(consent_id=theirs)
    assert refusal(
        lambda: w.consents.ListInquiries(request, metadata=w.subject_md(PERSON), timeout=10)
    ) == (grpc.StatusCode.NOT_FOUND, "CONSENT_NOT_FOUND")


# --- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize("used_before", [0, 1], ids=["first-use", "after-one-use"])
def test_last_use_is_released_exactly_once_under_concurrency(
    world: World, used_before: int
) -> None:
    w = world
    granted = w.grant(max_uses=used_before + 1)
    consent_id = granted.consent.consent_id
    for _ in range(used_before):
        w.query(granted.token.token)
    callers = 20
    barrier = threading.Barrier(callers)
    md = w.md()
    stub = inquiry_pb2_grpc.InquiryServiceStub(w.agency.channel)
    request = inquiry_pb2.AuthorizedQueryRequest(
        query=inquiry_pb2.QueryRequest(
            subject_code=PERSON,
            purpose="LOAN_APPROVAL",
            agreement_id=AGREEMENT,
            item_codes=["ADM.PUNISHMENT"],
        ),
        consent_token=granted.token.token,
    )
    outcomes: Counter[object] = Counter()
    lock = threading.Lock()

    def call() -> None:
        barrier.wait(timeout=10)
        try:
            answer = stub.QueryAuthorized(request, metadata=md, timeout=30)
            outcome: object = ("released", len(answer.records))
        except grpc.RpcError as exc:
            outcome = status_of(exc)
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes == {("released", 1): 1, (DENIED, "CONSENT_EXHAUSTED"): callers - 1}
    assert w.consent_rows()[consent_id] == ("exhausted", used_before + 1)
    shown = w.get(consent_id)
    assert (shown.status, shown.uses) == (consent_pb2.CONSENT_STATUS_EXHAUSTED, used_before + 1)
    race = [e for e in w.audit() if e["consent"] == consent_id and e["method"] != "GrantConsent"]
    race = race[used_before:]
    assert sorted(e["outcome"] for e in race) == ["REFUSED"] * (callers - 1) + ["RELEASED"]
