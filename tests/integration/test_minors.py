"""Minors (PIPL Art 31) over the real server, on every backend: a natural person under 14 on the
gateway's clock grants or approves a consent only with its guardian's signed authorisation, and
the open channel withholds its items. The rules themselves are unit-tested in
tests/unit/domain/test_minors.py; these check the wire, the rows and the audit entries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey
from sqlalchemy import select
from support.audit_entries import stored
from support.harness import Harness, make_agreement, metadata, signed_record
from support.rpc import field_violations, status_of
from support.scenario import Consented, consented, submit

from credit_gateway.adapters.grpc import convert
from credit_gateway.adapters.grpc.v1 import (
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
)
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage.tables import (
    ConsentEventRow,
    ConsentRequestRow,
    ConsentRow,
    SubjectRow,
)
from credit_gateway.crypto.signatures import sign_es256
from credit_gateway.domain.consent import artefact_bytes
from credit_gateway.domain.identifiers import resident_id_check_character
from credit_gateway.services import operator

CONSENT_METHODS = ("GrantConsent", "ApproveConsentRequest")


def resident_id(born: date, sequence: str) -> str:
    body = f"420106{born:%Y%m%d}{sequence}"
    return body + resident_id_check_character(body)


@dataclass
class Family:
    """The consent world of support/scenario.py, a child of 13 on the harness clock and its
    parent, a registered subject with a key."""

    c: Consented
    child: str
    parent: str
    parent_key: ec.EllipticCurvePrivateKey
    parent_kid: str

    def guardian(
        self, terms: consent_pb2.ConsentTerms, key: ec.EllipticCurvePrivateKey | None = None
    ) -> consent_pb2.Guardian:
        """The parent's authorisation: its signature over the artefact the child consents to."""
        signed = artefact_bytes(self.child, convert.terms_from_pb(terms))
        return consent_pb2.Guardian(
            subject_code=self.parent,
            signature=sign_es256(key or self.parent_key, signed),
            key_id=self.parent_kid,
        )

    def grant(self, **request: Any) -> consent_pb2.GrantConsentResponse:
        return self.c.consents.GrantConsent(
            consent_pb2.GrantConsentRequest(**request),
            metadata=self.c.subject_md(self.child),
            timeout=10,
        )

    def subject_id(self, code: str) -> str:
        with self.c.h.db.transaction(write=False) as session:
            found = record_store.find_subject(session, self.c.h.gateway.subject_lookup(code))
        assert found is not None
        return found.id

    def rows(self) -> tuple[object, ...]:
        """What a refused grant or approval must leave as it was (its audit entry aside)."""
        with self.c.h.db.transaction(write=False) as session:
            return (
                sorted(session.execute(select(SubjectRow.id)).scalars()),
                sorted(session.execute(select(ConsentRow.id)).scalars()),
                sorted(session.execute(select(ConsentEventRow.seq)).scalars()),
                sorted(session.execute(select(ConsentRequestRow.id, ConsentRequestRow.status))),
            )

    def refused(
        self, call: Any, status: grpc.StatusCode, reason: str, *, recorded: bool = True
    ) -> grpc.RpcError:
        """`call` is refused with `status` and `reason`, changes no row, and its refusal is on
        record (one REFUSED entry naming the reason) unless it was refused before any read."""
        rows, entries = self.rows(), len(stored(self.c.h.db))
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert status_of(caught.value) == (status, reason)
        assert self.rows() == rows
        after = stored(self.c.h.db)[entries:]
        if recorded:
            (entry,) = after
            assert entry["method"] in CONSENT_METHODS
            assert (entry["outcome"], entry["reasons"]) == ("REFUSED", [reason])
        else:
            assert after == []
        return caught.value


@pytest.fixture
def family(harness: Harness, tmp_path: Path) -> Family:
    h = harness
    today = h.clock.now.astimezone(timezone(timedelta(hours=8))).date()  # a civil date in China
    child = resident_id(date(today.year - 13, 1, 1), "021")  # 13 all year long
    parent = resident_id(date(today.year - 40, 1, 1), "013")
    key = ec.generate_private_key(ec.SECP256R1())
    jwk_file = tmp_path / "parent.jwk"
    jwk_file.write_text(json.dumps(ECKey.import_key(key.public_key()).as_dict(private=False)))
    kid = operator.register_subject_key(h.settings, parent, jwk_file)  # subjects register-key
    return Family(consented(h), child, parent, key, kid)


def test_a_13_year_olds_grant_needs_its_guardian_and_keeps_it(family: Family) -> None:
    f = family
    terms = f.c.terms()
    f.refused(
        lambda: f.grant(terms=terms), grpc.StatusCode.FAILED_PRECONDITION, "GUARDIAN_REQUIRED"
    )
    impostor = ec.generate_private_key(ec.SECP256R1())
    f.refused(
        lambda: f.grant(terms=terms, guardian=f.guardian(terms, impostor)),
        grpc.StatusCode.PERMISSION_DENIED,
        "GUARDIAN_SIGNATURE_INVALID",
    )
    # A guardian named by a code that is no resident ID: malformed, refused before any read.
    malformed = f.refused(
        lambda: f.grant(terms=terms, guardian=consent_pb2.Guardian(subject_code="not-a-code")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "BAD_IDENTIFIER",
        recorded=False,
    )
    assert field_violations(malformed) == {"guardian.subject_code"}

    guardian = f.guardian(terms)
    granted = f.grant(terms=terms, guardian=guardian)

    assert granted.consent.evidence == "real_name_assertion"  # the child's own will, as ever
    with f.c.h.db.transaction(write=False) as session:
        row = session.get(ConsentRow, granted.consent.consent_id)
        assert row is not None
        assert (row.guardian_subject_id, row.guardian_signature) == (
            f.subject_id(f.parent),
            guardian.signature,
        )
    entry = stored(f.c.h.db, "GrantConsent")[-1]
    assert (entry["outcome"], entry["reasons"]) == ("GRANTED", ["GUARDIAN_AUTHORISED"])
    assert entry["consent"] == granted.consent.consent_id


def test_a_13_year_old_approves_a_request_with_its_guardian_and_an_adult_alone(
    family: Family,
) -> None:
    f = family
    asked = consent_pb2_grpc.ConsentServiceStub(f.c.agency.channel).RequestConsent(
        consent_pb2.RequestConsentRequest(subject_code=f.child, terms=f.c.terms(grantee="")),
        metadata=f.c.md(),
        timeout=10,
    )

    def approve(**request: Any) -> consent_pb2.GrantConsentResponse:
        return f.c.consents.ApproveConsentRequest(
            consent_pb2.ApproveConsentRequestRequest(request_id=asked.request_id, **request),
            metadata=f.c.subject_md(f.child),
            timeout=10,
        )

    f.refused(approve, grpc.StatusCode.FAILED_PRECONDITION, "GUARDIAN_REQUIRED")
    approved = approve(guardian=f.guardian(asked.terms))  # the terms as the grantee asked them
    with f.c.h.db.transaction(write=False) as session:
        row = session.get(ConsentRow, approved.consent.consent_id)
        assert row is not None
        assert row.guardian_subject_id == f.subject_id(f.parent)
    entry = stored(f.c.h.db, "ApproveConsentRequest")[-1]
    assert (entry["outcome"], entry["reasons"]) == ("APPROVED", ["GUARDIAN_AUTHORISED"])

    # The parent consents alone (signed: it has a key): a guardian named for it is refused.
    terms = f.c.terms()
    parent = consent_pb2.GrantConsentRequest(
        terms=terms,
        subject_signature=sign_es256(
            f.parent_key, artefact_bytes(f.parent, convert.terms_from_pb(terms))
        ),
        subject_key_id=f.parent_kid,
        guardian=f.guardian(terms),
    )
    f.refused(
        lambda: f.c.consents.GrantConsent(parent, metadata=f.c.subject_md(f.parent), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "GUARDIAN_NOT_NEEDED",
    )


def test_the_open_channel_withholds_a_minors_dishonest_debtor_listing(family: Family) -> None:
    # JUD.DISHONEST_DEBTOR is OPEN for natural persons by the Supreme People's Court's
    # provisions, which bar minors from the list: the catalog names no provision for minors.
    f = family
    h = f.c.h
    court = h.add_participant("hubei-court", "providing-unit")
    make_agreement(
        h,
        f.c.agency,
        agreement_id="agr-open",
        categories=("joint_discipline_list",),
        levels=("open",),
    )
    listed = {
        "case_no": "(2026) E 01 Zhi 1",
        "court": "Wuhan Intermediate Court",
        "listed_on": "2026-01-02",
    }
    records = [
        signed_record(
            court,
            record_id=f"dd-{n}",
            item="JUD.DISHONEST_DEBTOR",
            subject=code,
            payload=listed,
            occurred_at=h.clock.now - timedelta(days=5),
            notice=f"N-{n}",
        )
        for n, code in enumerate((f.child, f.parent))
    ]
    assert submit(h, court, records).accepted == 2

    def query_open(code: str) -> Any:
        request = inquiry_pb2.QueryRequest(
            subject_code=code, purpose="LOAN_APPROVAL", agreement_id="agr-open"
        )
        return inquiry_pb2_grpc.InquiryServiceStub(f.c.agency.channel).QueryOpen(
            request, metadata=metadata(h.token(f.c.agency)), timeout=10
        )

    child = query_open(f.child)
    assert list(child.records) == []
    assert ("JUD.DISHONEST_DEBTOR", "MINOR_NOT_OPEN", 0) in {
        (w.item_code, w.reason, w.count) for w in child.withheld
    }
    adult = query_open(f.parent)
    assert [r.item_code for r in adult.records] == ["JUD.DISHONEST_DEBTOR"]
