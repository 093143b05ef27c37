"""`certs sign`: a participant's own key, certified by the gateway's CA in the gateway's terms."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from credit_gateway.auth.binding import x5t_s256
from credit_gateway.devpki.pki import (
    PARTICIPANT_URI_PREFIX,
    PkiError,
    init_pki,
    issue_participant,
    sign_participant_csr,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def csr_pem(
    key: CertificateIssuerPrivateKeyTypes,
    *,
    common_name: str = "someone-else",
    ask_for_ca: bool = False,
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if ask_for_ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    init_pki(tmp_path, now=NOW)
    return tmp_path


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p256", "p384", "rsa2048"],
)
def test_signed_certificate_carries_the_csr_key_and_the_gateway_terms(
    pki_dir: Path, key: CertificateIssuerPrivateKeyTypes
) -> None:
    signed = sign_participant_csr(
        pki_dir, csr_pem(key, ask_for_ca=True), "own-key-agency", "credit-agency", now=NOW
    )
    cert = x509.load_pem_x509_certificate(signed.cert_path.read_bytes())
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
    # The subject, SAN and extensions are the gateway's, whatever the CSR asked for.
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "own-key-agency"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "credit-agency"
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        PARTICIPANT_URI_PREFIX + "own-key-agency"
    ]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = x509.load_pem_x509_certificate((pki_dir / "ca.pem").read_bytes())
    PolicyBuilder().store(Store([ca])).time(NOW).build_client_verifier().verify(cert, [])
    assert signed.x5t_s256 == x5t_s256(cert.public_bytes(der))
    # No private key is written: the participant keeps it.
    assert not (pki_dir / "participants" / "own-key-agency.key").exists()


def test_a_csr_whose_signature_does_not_verify_is_refused(pki_dir: Path) -> None:
    good = csr_pem(ec.generate_private_key(ec.SECP256R1()))
    der = bytearray(x509.load_pem_x509_csr(good).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the signature's last byte: proof of possession no longer holds
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(PkiError, match="signature"):
        sign_participant_csr(pki_dir, tampered, "agency-x", "credit-agency", now=NOW)
    assert not (pki_dir / "participants" / "agency-x.pem").exists()


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=1024), "2048"),  # noqa: S505
        (ec.generate_private_key(ec.SECP256K1()), "curve"),
        (ed25519.Ed25519PrivateKey.generate(), "EC"),
    ],
    ids=["rsa1024", "secp256k1", "ed25519"],
)
def test_keys_the_gateway_does_not_accept_are_refused(
    pki_dir: Path, key: CertificateIssuerPrivateKeyTypes, says: str
) -> None:
    with pytest.raises(PkiError, match=says):
        sign_participant_csr(pki_dir, csr_pem(key), "agency-x", "credit-agency", now=NOW)
    assert not (pki_dir / "participants").exists() or not any((pki_dir / "participants").iterdir())


def test_not_a_csr_is_refused(pki_dir: Path) -> None:
    with pytest.raises(PkiError, match="signing request"):
        sign_participant_csr(
            pki_dir, b"-----BEGIN CERTIFICATE REQUEST-----\nAA\n", "a-1", "credit-agency"
        )


def test_an_existing_certificate_is_kept_unless_overwrite(pki_dir: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    first = sign_participant_csr(pki_dir, csr_pem(key), "agency-x", "credit-agency", now=NOW)
    before = first.cert_path.read_bytes()
    with pytest.raises(PkiError, match="already exists"):
        sign_participant_csr(pki_dir, csr_pem(key), "agency-x", "credit-agency", now=NOW)
    assert first.cert_path.read_bytes() == before
    again = sign_participant_csr(
        pki_dir, csr_pem(key), "agency-x", "credit-agency", now=NOW, overwrite=True
    )
    assert again.cert_path.read_bytes() != before


def test_a_participant_whose_key_the_pki_holds_is_not_resigned(pki_dir: Path) -> None:
    issue_participant(pki_dir, "agency-y", "credit-agency", now=NOW)
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PkiError, match="key is held here"):
        sign_participant_csr(
            pki_dir, csr_pem(key), "agency-y", "credit-agency", now=NOW, overwrite=True
        )


@pytest.mark.parametrize("name", ["../evil", "Agency", ""])
def test_bad_names_and_kinds_are_refused(pki_dir: Path, name: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PkiError):
        sign_participant_csr(pki_dir, csr_pem(key), name, "credit-agency", now=NOW)
    with pytest.raises(PkiError, match="kind"):
        sign_participant_csr(pki_dir, csr_pem(key), "agency-z", "emperor", now=NOW)
