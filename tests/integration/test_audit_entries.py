"""Every decision is on record (issue #13), on every backend: consent changes, by the subject or
the grantee, and the operator's actions each append their audit entry in the transaction of the
decision; a refused change, rolled back, leaves its refusal's entry alone. Each entry carries a
MAC the integrator accepts (none quarantined), names the subject by its internal id (never its
identity number), and ListInquiries gives the subject each inquiry's leaf index.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey
from sqlalchemy import select
from support.audit_entries import Stored, integrated, stored
from support.harness import CATALOG_FILE, COMPANY, PERSON, Harness, make_agreement
from support.rpc import refusal
from support.scenario import AGREEMENT, Consented, consented

from credit_gateway.adapters.grpc.v1 import consent_pb2, consent_pb2_grpc
from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage.tables import ConsentRow, ParticipantRow, SubjectRow
from credit_gateway.errors import NotFound, StorageError
from credit_gateway.services import operator

PERSON2 = "420106198501011233"


@pytest.fixture
def world(harness: Harness) -> Consented:
    return consented(harness)


def subject_id(h: Harness, code: str = PERSON) -> str | None:
    with h.db.transaction(write=False) as session:
        found = record_store.find_subject(session, h.gateway.subject_lookup(code))
    return None if found is None else found.id


def named(entries: list[Stored]) -> list[tuple[Any, ...]]:
    """What each entry says of a consent change."""
    members = ("caller", "method", "subject", "consent", "agreement", "request", "outcome")
    return [(*(e[m] for m in members), e["reasons"]) for e in entries]


def assert_no_identity_number(entries: list[Stored]) -> None:
    for entry in entries:
        for code in (PERSON, PERSON2, COMPANY):
            assert code.encode() not in entry.raw


def subject_jwk(tmp_path: Path) -> Path:
    """A file holding the public JWK of a fresh P-256 key, for subjects register-key."""
    jwk_file = tmp_path / "subject.jwk"
    public = ECKey.import_key(ec.generate_private_key(ec.SECP256R1()).public_key())
    jwk_file.write_text(json.dumps(public.as_dict(private=False)))
    return jwk_file


def consent_statuses(h: Harness) -> dict[str, str]:
    with h.db.transaction(write=False) as session:
        return {
            cid: status for cid, status in session.execute(select(ConsentRow.id, ConsentRow.status))
        }


def fail_after_append(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next entries are added to their transaction, which then fails before it commits."""
    append = audit_store.append

    def failing(*args: Any) -> None:
        append(*args)
        raise StorageError("the database went away after the entry was written")

    monkeypatch.setattr(audit_store, "append", failing)


# --- consent changes ---------------------------------------------------------------------------


def test_the_subjects_changes_are_on_record(world: Consented) -> None:
    h, before = world.h, len(stored(world.h.db))
    granted = world.granted().consent
    ref = consent_pb2.ConsentRef(consent_id=granted.consent_id)
    for change in (world.consents.PauseConsent, world.consents.ResumeConsent):
        change(ref, metadata=world.subject_md(), timeout=10)
    world.consents.RevokeConsent(ref, metadata=world.subject_md(), timeout=10)

    entries = integrated(h.gateway)[before:]
    me, cid = subject_id(h), granted.consent_id
    assert named(entries) == [
        ("self", "GrantConsent", me, cid, AGREEMENT, None, "GRANTED", []),
        ("self", "PauseConsent", me, cid, None, None, "PAUSED", []),
        ("self", "ResumeConsent", me, cid, None, None, "RESUMED", []),
        ("self", "RevokeConsent", me, cid, None, None, "REVOKED", []),
    ]
    assert all(e["at"] for e in entries)
    assert_no_identity_number(entries)


def test_a_grantees_request_and_the_subjects_answers_are_on_record(world: Consented) -> None:
    h, before = world.h, len(stored(world.h.db))

    def ask() -> str:
        request = consent_pb2.RequestConsentRequest(subject_code=PERSON2, terms=world.terms())
        stub = consent_pb2_grpc.ConsentServiceStub(world.agency.channel)
        asked = stub.RequestConsent(request, metadata=world.md(), timeout=10)
        return str(asked.request_id)

    approved_request, rejected_request = ask(), ask()
    approve = consent_pb2.ApproveConsentRequestRequest(request_id=approved_request)
    approved = world.consents.ApproveConsentRequest(
        approve, metadata=world.subject_md(PERSON2), timeout=10
    )
    reject = consent_pb2.ConsentRequestRef(request_id=rejected_request)
    world.consents.RejectConsentRequest(reject, metadata=world.subject_md(PERSON2), timeout=10)

    entries = integrated(h.gateway)[before:]
    them, agency, cid = subject_id(h, PERSON2), world.agency.id, approved.consent.consent_id
    assert them is not None
    assert named(entries) == [
        (agency, "RequestConsent", them, None, AGREEMENT, approved_request, "REQUESTED", []),
        (agency, "RequestConsent", them, None, AGREEMENT, rejected_request, "REQUESTED", []),
        ("self", "ApproveConsentRequest", them, cid, AGREEMENT, approved_request, "APPROVED", []),
        ("self", "RejectConsentRequest", them, None, None, rejected_request, "REJECTED", []),
    ]
    assert_no_identity_number(entries)


def test_a_refused_change_leaves_its_refusal_and_changes_nothing(world: Consented) -> None:
    h = world.h
    granted = world.granted().consent
    ref = consent_pb2.ConsentRef(consent_id=granted.consent_id)
    world.consents.RevokeConsent(ref, metadata=world.subject_md(), timeout=10)
    before, statuses = len(stored(h.db)), consent_statuses(h)

    resume = world.consents.ResumeConsent
    assert refusal(lambda: resume(ref, metadata=world.subject_md(), timeout=10)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "CONSENT_REVOKED",
    )
    assert consent_statuses(h) == statuses
    entries = integrated(h.gateway)[before:]
    me = subject_id(h)
    assert named(entries) == [
        (
            "self",
            "ResumeConsent",
            me,
            granted.consent_id,
            None,
            None,
            "REFUSED",
            ["CONSENT_REVOKED"],
        )
    ]


def test_a_bad_subject_signature_is_on_record_and_grants_nothing(
    world: Consented, tmp_path: Path
) -> None:
    h = world.h
    jwk_file = subject_jwk(tmp_path)
    kid = operator.register_subject_key(h.settings, PERSON, jwk_file)
    before = len(stored(h.db))

    request = consent_pb2.GrantConsentRequest(
        terms=world.terms(), subject_signature=b"\x01" * 64, subject_key_id=kid
    )
    grant = world.consents.GrantConsent
    assert refusal(lambda: grant(request, metadata=world.subject_md(), timeout=10)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "SUBJECT_SIGNATURE_INVALID",
    )
    assert consent_statuses(h) == {}
    entries = integrated(h.gateway)[before:]
    reason = "SUBJECT_SIGNATURE_INVALID"
    assert named(entries) == [
        ("self", "GrantConsent", subject_id(h), None, AGREEMENT, None, "REFUSED", [reason])
    ]


def test_a_refusal_for_a_subject_not_on_record_adds_no_subject(world: Consented) -> None:
    h, before = world.h, len(stored(world.h.db))
    stranger = h.add_participant("no-agreement", "credit-agency")  # on record itself
    request = consent_pb2.GrantConsentRequest(terms=world.terms(grantee=stranger.id))
    grant = world.consents.GrantConsent
    assert refusal(lambda: grant(request, metadata=world.subject_md(PERSON2), timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "GRANTEE_NOT_ELIGIBLE",
    )
    assert subject_id(h, PERSON2) is None
    [_, entry] = integrated(h.gateway)[before:]  # the participant's, then the refusal's
    assert named([entry]) == [
        ("self", "GrantConsent", None, None, None, None, "REFUSED", ["GRANTEE_NOT_ELIGIBLE"])
    ]
    assert_no_identity_number([entry])


def test_a_change_whose_transaction_fails_leaves_no_entry(
    world: Consented, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = world.h
    granted = world.granted().consent
    before, statuses = len(stored(h.db)), consent_statuses(h)
    fail_after_append(monkeypatch)
    ref = consent_pb2.ConsentRef(consent_id=granted.consent_id)
    code, _ = refusal(lambda: world.consents.RevokeConsent(ref, metadata=world.subject_md()))
    assert code is grpc.StatusCode.UNAVAILABLE
    assert consent_statuses(h) == statuses  # still active: the entry went with the change
    assert len(stored(h.db)) == before


# --- operator actions --------------------------------------------------------------------------


def test_operator_actions_are_on_record(harness: Harness, tmp_path: Path) -> None:
    h, before = harness, len(stored(harness.db))
    agency = h.add_participant("zx-credit", "credit-agency")
    document = make_agreement(h, agency, register=False)
    operator.register_agreement(h.settings, json.dumps(document).encode(), document, agency.id)
    operator.suspend_agreement(h.settings, "agr-zx-credit")
    later = h.clock.now + timedelta(days=30)
    operator.change_licence(h.settings, agency.id, valid_until=later, revoked=None)
    operator.change_licence(h.settings, agency.id, valid_until=None, revoked=True)
    operator.suspend_participant(h.settings, agency.id)
    jwk_file = subject_jwk(tmp_path)
    operator.register_subject_key(h.settings, PERSON, jwk_file)
    catalog = operator.load_catalog(h.settings, json.loads(CATALOG_FILE.read_text()))

    entries = integrated(h.gateway)[before:]
    said = [
        (e["caller"], e["method"], e["outcome"], e["items"], e["agreement"], e["subject"])
        for e in entries
    ]
    person = subject_id(h)
    assert person is not None
    assert said == [
        ("operator", "participants.add", "ADDED", [agency.id], None, None),
        ("operator", "agreements.register", "REGISTERED", [agency.id], "agr-zx-credit", None),
        ("operator", "agreements.suspend", "SUSPENDED", [], "agr-zx-credit", None),
        ("operator", "participants.licence", "LICENCE_CHANGED", [agency.id], None, None),
        ("operator", "participants.licence", "LICENCE_REVOKED", [agency.id], None, None),
        ("operator", "participants.suspend", "SUSPENDED", [agency.id], None, None),
        ("operator", "subjects.register-key", "REGISTERED", [], None, person),
        ("operator", "catalog.load", "LOADED", [catalog.version], None, None),
    ]
    assert_no_identity_number(entries)  # not the subject's code, nor the agency's org code


def test_a_failed_operator_action_leaves_no_entry(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, before = harness, len(stored(harness.db))
    with pytest.raises(NotFound):
        operator.suspend_participant(h.settings, "nobody")
    assert len(stored(h.db)) == before
    fail_after_append(monkeypatch)
    with pytest.raises(StorageError):
        h.add_participant("zx-credit", "credit-agency")
    with h.db.transaction(write=False) as session:
        assert session.get(ParticipantRow, "zx-credit") is None
    assert len(stored(h.db)) == before


def test_a_subject_key_registration_names_the_subject_by_its_id_only(
    harness: Harness, tmp_path: Path
) -> None:
    jwk_file = subject_jwk(tmp_path)
    operator.register_subject_key(harness.settings, PERSON, jwk_file)
    [entry] = stored(harness.db, "subjects.register-key")
    with harness.db.transaction(write=False) as session:
        [row] = session.scalars(select(SubjectRow)).all()
    assert entry["subject"] == row.id
    assert_no_identity_number([entry])


# --- what the subject sees ---------------------------------------------------------------------


def test_list_inquiries_gives_each_inquiry_its_leaf_index(world: Consented) -> None:
    """Art 19 para 2: the subject sees the inquiries into it (who queried it), not its own
    consent changes, which ListConsents and ListConsentRequests show it."""
    h = world.h
    granted = world.granted()
    inquiry_ids = [world.query(granted.token.token).inquiry_id for _ in range(2)]
    leaves = {e["id"]: e.leaf_index for e in integrated(h.gateway)}

    for consent_id in ("", granted.consent.consent_id):
        listed = world.consents.ListInquiries(
            consent_pb2.ListInquiriesRequest(consent_id=consent_id),
            metadata=world.subject_md(),
            timeout=10,
        ).inquiries
        assert [e.inquiry_id for e in listed] == inquiry_ids[::-1]  # no GrantConsent among them
        assert all(e.HasField("leaf_index") for e in listed)
        assert [e.leaf_index for e in listed] == [leaves[i] for i in inquiry_ids[::-1]]


def test_list_inquiries_is_unchanged_by_consent_changes(world: Consented) -> None:
    h = world.h
    md = world.subject_md()
    granted = world.granted().consent
    world.consents.PauseConsent(consent_pb2.ConsentRef(consent_id=granted.consent_id), metadata=md)
    listed = world.consents.ListInquiries(consent_pb2.ListInquiriesRequest(), metadata=md)
    assert list(listed.inquiries) == []
    assert [e["method"] for e in stored(h.db, "GrantConsent", "PauseConsent")] == [
        "GrantConsent",
        "PauseConsent",
    ]
