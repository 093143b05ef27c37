"""Operator commands that act on a running gateway at once: licences and subject keys."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey
from sqlalchemy import select
from support.audit_entries import integrated
from support.harness import COMPANY, PERSON, Harness, make_agreement, metadata
from support.rpc import reason_of

from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.v1 import (
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
)
from credit_gateway.adapters.storage.tables import SubjectRow
from credit_gateway.cli.main import main
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.errors import InvalidArgument
from credit_gateway.services import operator

pytestmark = pytest.mark.usefixtures("no_outside_settings")


def test_revoked_licence_stops_the_agency_at_its_next_call(
    harness: Harness, tmp_path: Path
) -> None:
    agency = harness.add_participant("zx-credit", "credit-agency")
    make_agreement(harness, agency, categories=("registration",))
    token = harness.token(agency)
    stub = inquiry_pb2_grpc.InquiryServiceStub(agency.channel)
    query = inquiry_pb2.QueryRequest(
        subject_code=PERSON, purpose="LOAN_APPROVAL", agreement_id="agr-zx-credit"
    )
    stub.QueryOpen(query, metadata=metadata(token), timeout=5)
    config = harness.write_config(tmp_path / "gateway.toml")
    assert (
        main(
            [
                "--config",
                str(config),
                "participants",
                "licence",
                "--id",
                "zx-credit",
                "--revoke-licence",
            ]
        )
        == 0
    )
    with pytest.raises(grpc.RpcError) as refused:
        stub.QueryOpen(query, metadata=metadata(token), timeout=5)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == "LICENCE_REVOKED"
    # The command's own process wrote its entry, with a MAC the server's integrator accepts.
    [entry] = [e for e in integrated(harness.gateway) if e["method"] == "participants.licence"]
    assert (entry["caller"], entry["outcome"], entry["items"]) == (
        "operator",
        "LICENCE_REVOKED",
        ["zx-credit"],
    )


def test_registered_subject_key_makes_consent_signatures_mandatory(
    harness: Harness, tmp_path: Path
) -> None:
    agency = harness.add_participant("zx-credit", "credit-agency")
    portal = harness.add_participant("realname-portal", "identity-provider")
    make_agreement(harness, agency, categories=("administrative_permit",))
    key = ec.generate_private_key(ec.SECP256R1())
    jwk_file = tmp_path / "subject.jwk"
    jwk_file.write_text(json.dumps(ECKey.import_key(key.public_key()).as_dict(private=False)))
    config = harness.write_config(tmp_path / "gateway.toml")
    assert (
        main(["--config", str(config), "subjects", "register-key", PERSON, "--jwk", str(jwk_file)])
        == 0
    )
    now = harness.clock.now
    terms = consent_pb2.ConsentTerms(
        grantee="zx-credit",
        purpose_code="LOAN_APPROVAL",
        item_codes=["ADM.PERMIT"],
        data_from=to_timestamp(now - timedelta(days=30)),
        data_to=to_timestamp(now),
        valid_from=to_timestamp(now),
        valid_until=to_timestamp(now + timedelta(days=30)),
        max_uses=1,
    )
    stub = consent_pb2_grpc.ConsentServiceStub(portal.channel)
    with pytest.raises(grpc.RpcError) as refused:
        stub.GrantConsent(
            consent_pb2.GrantConsentRequest(terms=terms),
            metadata=metadata(harness.subject_token(portal, PERSON)),
            timeout=5,
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == "SUBJECT_SIGNATURE_REQUIRED"


def test_register_key_refuses_a_private_key(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk_file = tmp_path / "subject.jwk"
    jwk_file.write_text(json.dumps(ECKey.import_key(key).as_dict(private=True)))
    config = harness.write_config(tmp_path / "gateway.toml")
    assert (
        main(["--config", str(config), "subjects", "register-key", PERSON, "--jwk", str(jwk_file)])
        == 2
    )
    assert "public half" in capsys.readouterr().err


def test_register_key_takes_the_kind_of_subject_the_code_means(
    harness: Harness, tmp_path: Path
) -> None:
    # Issue #11 item 1: 121101190408136711 is a resident id and a USCC; the operator says which.
    ambiguous = "121101190408136711"
    key = ec.generate_private_key(ec.SECP256R1())
    jwk_file = tmp_path / "subject.jwk"
    jwk_file.write_text(json.dumps(ECKey.import_key(key.public_key()).as_dict(private=False)))
    with pytest.raises(InvalidArgument) as refused:
        operator.register_subject_key(harness.settings, ambiguous, jwk_file)
    assert refused.value.reason == "SUBJECT_KIND_REQUIRED"
    with pytest.raises(InvalidArgument) as refused:
        operator.register_subject_key(
            harness.settings, COMPANY, jwk_file, SubjectKind.NATURAL_PERSON
        )
    assert refused.value.reason == "SUBJECT_KIND_MISMATCH"
    with harness.db.transaction(write=False) as session:
        assert session.scalars(select(SubjectRow.kind)).all() == []
    operator.register_subject_key(harness.settings, ambiguous, jwk_file, SubjectKind.NATURAL_PERSON)
    with harness.db.transaction(write=False) as session:
        assert session.scalars(select(SubjectRow.kind)).all() == ["natural_person"]


def test_register_key_cli_names_the_kind_and_keeps_a_subject_one_kind(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ambiguous = "121101190408136711"
    key = ec.generate_private_key(ec.SECP256R1())
    jwk_file = tmp_path / "subject.jwk"
    jwk_file.write_text(json.dumps(ECKey.import_key(key.public_key()).as_dict(private=False)))
    register = ["--config", str(harness.write_config(tmp_path / "gateway.toml"))]
    register += ["subjects", "register-key", ambiguous, "--jwk", str(jwk_file)]
    assert main(register) == 2
    assert "subject_kind" in capsys.readouterr().err
    assert main([*register, "--kind", "legal_person"]) == 0
    # Held as a legal person now: the same code as a person is refused, and nothing changes.
    assert main([*register, "--kind", "natural_person"]) == 2
    assert "held as legal_person" in capsys.readouterr().err
    with harness.db.transaction(write=False) as session:
        assert session.scalars(select(SubjectRow.kind)).all() == ["legal_person"]
