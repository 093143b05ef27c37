"""A participant that keeps its private key: `certs sign CSR`, then mTLS and a release with it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.harness import PERSON, Harness, Participant, make_agreement, metadata

from credit_gateway.adapters.grpc.v1 import inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.cli.main import main
from credit_gateway.devpki import pki

pytestmark = pytest.mark.usefixtures("no_outside_settings")


def test_an_agency_with_its_own_key_is_certified_registered_and_answered(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    name = f"own-key-{backend}"  # the dev CA's directory is the session's, shared by backends
    # The agency's side: its key never leaves this directory.
    own = tmp_path / "agency-side"
    own.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    key_path = own / "agency.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    csr_path = own / "agency.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))

    # The operator's side.
    config = str(harness.write_config(tmp_path / "gateway.toml"))
    sign = ["--config", config, "certs", "sign", str(csr_path)]
    assert main([*sign, "--name", name, "--kind", "credit-agency"]) == 0
    cert_path = harness.settings.certs_dir / "participants" / f"{name}.pem"
    cert_pem = cert_path.read_bytes()
    x5t = pki.x5t_s256_of_der(
        x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    )
    assert f"x5t#S256={x5t}" in capsys.readouterr().out
    until = (harness.clock.now + timedelta(days=365)).date().isoformat()
    added = main(
        [
            "--config", config, "participants", "add", "--id", name,
            "--kind", "credit-agency", "--org-code", "91350100M000100Y43",
            "--name", "Own Key Credit", "--cert", str(cert_path),
            "--licence-number", "LIC-OWN", "--licence-valid-until", until,
        ]
    )  # fmt: skip
    assert added == 0

    # The agency calls with the certificate and the key only it holds.
    cert = pki.IssuedCert(
        cert_path=cert_path,
        key_path=key_path,
        fingerprint_sha256=pki.fingerprint_sha256(cert_pem),
        x5t_s256=x5t,
    )
    agency = Participant(name, "credit-agency", cert, harness.channel(cert))
    harness.participants[agency.id] = agency  # closed with the harness
    make_agreement(harness, agency, categories=("registration",))
    answer = inquiry_pb2_grpc.InquiryServiceStub(agency.channel).QueryOpen(
        inquiry_pb2.QueryRequest(
            subject_code=PERSON, purpose="LOAN_APPROVAL", agreement_id=f"agr-{name}"
        ),
        metadata=metadata(harness.token(agency)),
        timeout=10,
    )
    assert answer.inquiry_id
    assert answer.agreement_id == f"agr-{name}"


def test_signing_a_file_that_is_not_a_csr_is_one_line_and_writes_nothing(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(harness.write_config(tmp_path / "gateway.toml"))
    junk = tmp_path / "junk.csr"
    junk.write_text("hello\n")
    args = [
        "--config",
        config,
        "certs",
        "sign",
        str(junk),
        "--name",
        "x-1",
        "--kind",
        "credit-agency",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "signing request" in err[0]
    assert not (harness.settings.certs_dir / "participants" / "x-1.pem").exists()
    missing = ["--config", config, "certs", "sign", str(tmp_path / "nope.csr")]
    assert main([*missing, "--name", "x-1", "--kind", "credit-agency"]) == 2
    assert "nope.csr" in capsys.readouterr().err
