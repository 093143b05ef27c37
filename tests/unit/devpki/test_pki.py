"""Tests for the development PKI (credit_gateway.devpki.pki)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from credit_gateway.devpki import pki
from credit_gateway.devpki.pki import (
    IssuedCert,
    ParticipantKind,
    PkiError,
    fingerprint_sha256,
    init_pki,
    issue_foreign_ca_client,
    issue_participant,
    x5t_s256_of_der,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _ca(directory: Path) -> x509.Certificate:
    return _cert(directory / "ca.pem")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    public_key = issuer.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert cert.signature_hash_algorithm is not None
    try:
        public_key.verify(
            cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
        )
    except InvalidSignature:
        return False
    return True


def _client_verify(
    leaf: x509.Certificate, ca: x509.Certificate
) -> x509.verification.VerifiedClient:
    verifier = PolicyBuilder().store(Store([ca])).time(NOW).build_client_verifier()
    return verifier.verify(leaf, [])


# --- init_pki -----------------------------------------------------------------


def test_init_creates_ca_with_expected_extensions(tmp_path: Path) -> None:
    paths = init_pki(tmp_path / "certs", now=NOW)

    assert paths.directory == tmp_path / "certs"
    ca = _cert(paths.ca_cert)
    assert ca.version is x509.Version.v3
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)
    assert ca.subject == ca.issuer
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "credit_gateway dev CA"
    )

    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca is True
    assert bc.value.path_length == 0

    ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign
    assert not ku.value.digital_signature

    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(public_key)

    assert ca.not_valid_after_utc - NOW == timedelta(days=3650)
    assert ca.not_valid_before_utc <= NOW
    assert _signed_by(ca, ca)


def test_init_creates_server_cert_with_sans_and_server_auth(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, now=NOW)
    ca = _cert(paths.ca_cert)
    server = _cert(paths.server_cert)

    assert server.version is x509.Version.v3
    assert isinstance(server.signature_hash_algorithm, hashes.SHA256)
    assert isinstance(server.public_key(), ec.EllipticCurvePublicKey)
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "credit-gateway"
    assert server.issuer == ca.subject
    assert server.not_valid_after_utc - NOW == timedelta(days=730)

    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }

    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]

    ku = server.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not ku.value.key_cert_sign

    aki = server.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest

    assert _signed_by(server, ca)
    # Full path validation as a TLS client of the gateway would do it, for each SAN.
    for subject in (
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ):
        verifier = PolicyBuilder().store(Store([ca])).time(NOW).build_server_verifier(subject)
        assert verifier.verify(server, []) == [server, ca]


def test_init_is_idempotent_and_keeps_the_ca(tmp_path: Path) -> None:
    first = init_pki(tmp_path, now=NOW)
    files = [first.ca_cert, first.ca_key, first.server_cert, first.server_key]
    before = {p: p.read_bytes() for p in files}

    second = init_pki(tmp_path, now=NOW + timedelta(days=30))

    assert second == first
    assert {p: p.read_bytes() for p in files} == before


def test_init_keeps_ca_and_reissues_missing_server_cert(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, now=NOW)
    ca_bytes = (paths.ca_cert.read_bytes(), paths.ca_key.read_bytes())
    old_server = paths.server_cert.read_bytes()
    paths.server_cert.unlink()
    paths.server_key.unlink()

    init_pki(tmp_path, now=NOW)

    assert (paths.ca_cert.read_bytes(), paths.ca_key.read_bytes()) == ca_bytes
    assert paths.server_cert.read_bytes() != old_server
    assert _signed_by(_cert(paths.server_cert), _cert(paths.ca_cert))


def test_init_refuses_half_a_ca(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, now=NOW)
    ca_cert = paths.ca_cert.read_bytes()
    paths.ca_key.unlink()

    with pytest.raises(PkiError, match=r"ca\.key"):
        init_pki(tmp_path, now=NOW)
    assert paths.ca_cert.read_bytes() == ca_cert


def test_init_refuses_mismatched_ca_key(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, now=NOW)
    other = init_pki(tmp_path / "other", now=NOW)
    paths.ca_key.write_bytes(other.ca_key.read_bytes())

    with pytest.raises(PkiError, match="does not match"):
        issue_participant(tmp_path, "agency-1", ParticipantKind.CREDIT_AGENCY, now=NOW)


def test_init_writes_gitignore_once(tmp_path: Path) -> None:
    init_pki(tmp_path, now=NOW)
    assert (tmp_path / ".gitignore").read_text() == "*.key\n"

    (tmp_path / ".gitignore").write_text("# mine\n")
    init_pki(tmp_path, now=NOW)
    assert (tmp_path / ".gitignore").read_text() == "# mine\n"


def test_init_rejects_naive_now(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="timezone-aware"):
        init_pki(tmp_path, now=datetime(2025, 1, 1))


@posix_only
def test_file_modes(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, now=NOW)
    issued = issue_participant(tmp_path, "agency-1", "credit-agency", now=NOW)

    for key in (paths.ca_key, paths.server_key, issued.key_path):
        assert _mode(key) == 0o600, key
    for cert in (paths.ca_cert, paths.server_cert, issued.cert_path):
        assert _mode(cert) == 0o644, cert
    # No temp files left behind by the atomic writes.
    assert not [p for p in tmp_path.rglob(".*.tmp")]


@posix_only
def test_key_is_0600_from_creation_even_with_open_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A write-then-chmod implementation would call chmod on the key; creation mode must suffice.
    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("key permissions must be set at creation, not afterwards")

    monkeypatch.setattr(os, "chmod", no_chmod)
    old_umask = os.umask(0)
    try:
        paths = init_pki(tmp_path, now=NOW)
    finally:
        os.umask(old_umask)
    assert _mode(paths.ca_key) == 0o600
    assert _mode(paths.server_key) == 0o600


def test_private_keys_are_unencrypted_pkcs8_p256(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, now=NOW)
    for key_path, cert_path in (
        (paths.ca_key, paths.ca_cert),
        (paths.server_key, paths.server_cert),
    ):
        pem = key_path.read_bytes()
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, not SEC1
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)
        assert key.public_key() == _cert(cert_path).public_key()


# --- participants ---------------------------------------------------------------


def test_participant_cert_chains_to_ca_with_client_auth(tmp_path: Path) -> None:
    init_pki(tmp_path, now=NOW)
    issued = issue_participant(
        tmp_path, "zj-credit-agency-01", ParticipantKind.CREDIT_AGENCY, now=NOW
    )

    assert issued.cert_path == tmp_path / "participants" / "zj-credit-agency-01.pem"
    assert issued.key_path == tmp_path / "participants" / "zj-credit-agency-01.key"
    ca = _ca(tmp_path)
    cert = _cert(issued.cert_path)

    assert cert.version is x509.Version.v3
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.issuer == ca.subject
    assert _signed_by(cert, ca)
    cert.verify_directly_issued_by(ca)

    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "zj-credit-agency-01"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "credit-agency"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "credit_gateway participant"
    )

    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:credit-gateway:participant:zj-credit-agency-01"
    ]
    assert cert.not_valid_after_utc - NOW == timedelta(days=365)

    verified = _client_verify(cert, ca)
    assert verified.chain == [cert, ca]
    assert verified.subjects is not None
    assert (
        x509.UniformResourceIdentifier("urn:credit-gateway:participant:zj-credit-agency-01")
        in verified.subjects
    )


def test_participant_cert_is_not_a_server_cert(tmp_path: Path) -> None:
    init_pki(tmp_path, now=NOW)
    issued = issue_participant(tmp_path, "idp", ParticipantKind.IDENTITY_PROVIDER, now=NOW)
    verifier = (
        PolicyBuilder()
        .store(Store([_ca(tmp_path)]))
        .time(NOW)
        .build_server_verifier(x509.DNSName("localhost"))
    )
    with pytest.raises(VerificationError):
        verifier.verify(_cert(issued.cert_path), [])


@pytest.mark.parametrize("kind", list(ParticipantKind))
def test_every_kind_is_accepted_as_enum_or_string(tmp_path: Path, kind: ParticipantKind) -> None:
    init_pki(tmp_path, now=NOW)
    by_enum = issue_participant(tmp_path, "p-enum", kind, now=NOW)
    by_str = issue_participant(tmp_path, "p-str", kind.value, now=NOW)
    for issued in (by_enum, by_str):
        org = _cert(issued.cert_path).subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        assert org[0].value == kind.value


def test_participant_kind_values() -> None:
    assert [k.value for k in ParticipantKind] == [
        "national-platform",
        "provincial-platform",
        "credit-agency",
        "industry-association",
        "government-department",
        "providing-unit",
        "identity-provider",
        "auditor",
    ]
    assert ParticipantKind("credit-agency") == "credit-agency"


def test_unknown_kind_refused(tmp_path: Path) -> None:
    init_pki(tmp_path, now=NOW)
    with pytest.raises(PkiError, match="kind"):
        issue_participant(tmp_path, "agency-1", "bank", now=NOW)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-agency",
        "Agency",
        "agency_1",
        "agency.1",
        "../agency",
        "agency/1",
        "agency 1",
        "agency\n",
        "ägency",
        "a" * 64,
    ],
)
def test_bad_names_refused(tmp_path: Path, name: str) -> None:
    init_pki(tmp_path, now=NOW)
    with pytest.raises(PkiError, match="invalid participant name"):
        issue_participant(tmp_path, name, ParticipantKind.CREDIT_AGENCY, now=NOW)
    with pytest.raises(PkiError, match="invalid participant name"):
        issue_foreign_ca_client(tmp_path, name, now=NOW)
    assert not (tmp_path / "participants").exists() or not any(
        (tmp_path / "participants").iterdir()
    )


@pytest.mark.parametrize("name", ["a", "0", "agency-1", "a-", "a" * 63])
def test_good_names_accepted(tmp_path: Path, name: str) -> None:
    init_pki(tmp_path, now=NOW)
    issued = issue_participant(tmp_path, name, ParticipantKind.PROVIDING_UNIT, now=NOW)
    assert issued.cert_path.name == f"{name}.pem"


def test_participant_requires_ca(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="init_pki"):
        issue_participant(tmp_path, "agency-1", ParticipantKind.CREDIT_AGENCY, now=NOW)


def test_participant_is_idempotent_unless_overwrite(tmp_path: Path) -> None:
    init_pki(tmp_path, now=NOW)
    first = issue_participant(tmp_path, "agency-1", ParticipantKind.CREDIT_AGENCY, now=NOW)
    pem, key = first.cert_path.read_bytes(), first.key_path.read_bytes()

    again = issue_participant(
        tmp_path, "agency-1", ParticipantKind.CREDIT_AGENCY, now=NOW + timedelta(days=1)
    )
    assert again == first
    assert (first.cert_path.read_bytes(), first.key_path.read_bytes()) == (pem, key)

    renewed = issue_participant(
        tmp_path, "agency-1", ParticipantKind.CREDIT_AGENCY, now=NOW, overwrite=True
    )
    assert renewed.cert_path == first.cert_path
    assert renewed.fingerprint_sha256 != first.fingerprint_sha256
    assert first.key_path.read_bytes() != key
    assert _signed_by(_cert(renewed.cert_path), _ca(tmp_path))


def test_existing_participant_with_other_kind_is_not_returned(tmp_path: Path) -> None:
    init_pki(tmp_path, now=NOW)
    issue_participant(tmp_path, "agency-1", ParticipantKind.CREDIT_AGENCY, now=NOW)

    with pytest.raises(PkiError, match="overwrite=True"):
        issue_participant(tmp_path, "agency-1", ParticipantKind.NATIONAL_PLATFORM, now=NOW)

    reissued = issue_participant(
        tmp_path, "agency-1", ParticipantKind.NATIONAL_PLATFORM, now=NOW, overwrite=True
    )
    org = _cert(reissued.cert_path).subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert org[0].value == "national-platform"


def test_participant_validity_capped_at_ca_expiry(tmp_path: Path) -> None:
    init_pki(tmp_path, now=NOW)
    late = NOW + timedelta(days=3650 - 30)
    issued = issue_participant(tmp_path, "agency-1", ParticipantKind.CREDIT_AGENCY, now=late)
    assert _cert(issued.cert_path).not_valid_after_utc == _ca(tmp_path).not_valid_after_utc


def test_expired_ca_refuses_to_issue(tmp_path: Path) -> None:
    init_pki(tmp_path, now=NOW)
    with pytest.raises(PkiError, match="expired"):
        issue_participant(
            tmp_path, "agency-1", ParticipantKind.CREDIT_AGENCY, now=NOW + timedelta(days=3651)
        )


# --- foreign CA -----------------------------------------------------------------


def test_foreign_ca_client_does_not_verify_against_our_ca(tmp_path: Path) -> None:
    init_pki(tmp_path, now=NOW)
    ours = _ca(tmp_path)
    foreign = issue_foreign_ca_client(tmp_path, "impostor", now=NOW)

    assert foreign.cert_path == tmp_path / "foreign" / "participants" / "impostor.pem"
    cert = _cert(foreign.cert_path)
    foreign_ca = _cert(tmp_path / "foreign" / "ca.pem")

    assert not _signed_by(cert, ours)
    with pytest.raises(ValueError, match=r"[Ss]ignature|[Ii]ssuer"):
        cert.verify_directly_issued_by(ours)
    with pytest.raises(VerificationError):
        _client_verify(cert, ours)

    # It is a well-formed client cert: only the trust anchor differs.
    assert _client_verify(cert, foreign_ca).chain == [cert, foreign_ca]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert foreign_ca.public_key() != ours.public_key()
    # Our own CA and participants are untouched.
    assert _ca(tmp_path) == ours
    assert not (tmp_path / "participants" / "impostor.pem").exists()


def test_foreign_ca_is_reused(tmp_path: Path) -> None:
    a = issue_foreign_ca_client(tmp_path, "a", now=NOW)
    ca_pem = (tmp_path / "foreign" / "ca.pem").read_bytes()
    b = issue_foreign_ca_client(tmp_path, "b", now=NOW)
    assert (tmp_path / "foreign" / "ca.pem").read_bytes() == ca_pem
    foreign_ca = _cert(tmp_path / "foreign" / "ca.pem")
    assert _signed_by(_cert(a.cert_path), foreign_ca)
    assert _signed_by(_cert(b.cert_path), foreign_ca)


# --- fingerprints -----------------------------------------------------------------


def test_fingerprint_and_x5t_agree_with_hashlib(tmp_path: Path) -> None:
    init_pki(tmp_path, now=NOW)
    issued = issue_participant(tmp_path, "agency-1", ParticipantKind.CREDIT_AGENCY, now=NOW)
    pem = issued.cert_path.read_bytes()
    der = _cert(issued.cert_path).public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der).digest()

    expected_hex = digest.hex()
    expected_x5t = base64.urlsafe_b64encode(digest).decode().rstrip("=")

    assert issued.fingerprint_sha256 == expected_hex
    assert fingerprint_sha256(pem) == expected_hex
    assert expected_hex == expected_hex.lower()
    assert len(expected_hex) == 64

    assert issued.x5t_s256 == expected_x5t
    assert x5t_s256_of_der(der) == expected_x5t
    assert len(expected_x5t) == 43
    assert "=" not in expected_x5t
    assert "+" not in expected_x5t
    assert "/" not in expected_x5t


def test_x5t_known_vector() -> None:
    # SHA-256("") is a fixed, well-known value; pins the encoding independently of certs.
    assert x5t_s256_of_der(b"") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"


def test_fingerprint_rejects_garbage() -> None:
    with pytest.raises(PkiError):
        fingerprint_sha256(b"not a certificate")


def test_result_types_are_frozen(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, now=NOW)
    issued = issue_participant(tmp_path, "agency-1", ParticipantKind.CREDIT_AGENCY, now=NOW)
    assert isinstance(issued, IssuedCert)
    with pytest.raises(AttributeError):
        paths.ca_cert = tmp_path  # type: ignore[misc]
    with pytest.raises(AttributeError):
        issued.x5t_s256 = "x"  # type: ignore[misc]
    assert pki.__all__  # the module declares its public surface
