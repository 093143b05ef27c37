"""Development PKI for the gateway: a private CA, the server certificate and participant
client certificates, all made with ``cryptography`` (no openssl subprocess).

Layout under ``directory``::

    ca.pem, ca.key                 private CA (never overwritten once it exists)
    server.pem, server.key         gateway TLS server certificate
    participants/<name>.pem|.key   participant client certificates (mTLS)
    participants/<name>.pem        ... or only the certificate, signed from the participant's
                                   CSR (`certs sign`): its private key never leaves it
    foreign/ca.pem|.key            an unrelated CA, only for negative tests
    foreign/participants/...       clients of that unrelated CA
    .gitignore                     keeps ``*.key`` out of version control

This is for development and tests only: keys are stored unencrypted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from credit_gateway.auth.binding import x5t_s256
from credit_gateway.domain.participants import ParticipantKind
from credit_gateway.errors import InfrastructureError

__all__ = [
    "IssuedCert",
    "ParticipantKind",
    "PkiError",
    "PkiPaths",
    "SignedCert",
    "fingerprint_sha256",
    "init_pki",
    "issue_foreign_ca_client",
    "issue_participant",
    "sign_participant_csr",
    "x5t_s256_of_der",
]


class PkiError(InfrastructureError):
    """The PKI directory is inconsistent or a request to it is invalid. Most raises are about
    the directory (ours); a bad participant name or kind is the operator's, told the same way."""

    default_reason = "PKI"


# Kept free of other imports from this package so it can move to the domain package as is.
# (str, Enum) rather than StrEnum as specified for the domain model; members compare equal
# to their string values either way.
@dataclass(frozen=True, slots=True)
class PkiPaths:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    directory: Path


@dataclass(frozen=True, slots=True)
class SignedCert:
    cert_path: Path
    fingerprint_sha256: str  # lowercase hex SHA-256 of the DER certificate
    x5t_s256: str  # RFC 8705 ``cnf`` value: base64url (unpadded) of the same digest


@dataclass(frozen=True, slots=True)
class IssuedCert(SignedCert):
    key_path: Path


CA_COMMON_NAME = "credit_gateway dev CA"
FOREIGN_CA_COMMON_NAME = "credit_gateway foreign test CA (untrusted)"
SERVER_COMMON_NAME = "credit-gateway"
PARTICIPANT_OU = "credit_gateway participant"
PARTICIPANT_URI_PREFIX = "urn:credit-gateway:participant:"

CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=730)
PARTICIPANT_VALIDITY = timedelta(days=365)
# Keys a participant may bring in a CSR: what TLS 1.3 stacks and grpc verify everywhere.
_CSR_CURVES = (ec.SECP256R1, ec.SECP384R1)
_CSR_MIN_RSA_BITS = 2048
# Backdate notBefore so a peer whose clock is slightly behind still accepts a fresh cert.
CLOCK_SKEW = timedelta(minutes=5)

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_KEY_MODE = 0o600
_CERT_MODE = 0o644
_GITIGNORE = b"*.key\n"


# ---------------------------------------------------------------------------
# Public helpers (imported elsewhere for RFC 8705 certificate binding)
# ---------------------------------------------------------------------------


# RFC 8705 ``x5t#S256`` of a DER certificate: auth.binding's, the gateway's one thumbprint, so
# what the dev PKI prints is what the gateway binds tokens to. Kept under the name it had here.
x5t_s256_of_der = x5t_s256


def fingerprint_sha256(cert_pem: bytes) -> str:
    """Lowercase hex SHA-256 of the DER encoding of the (first) certificate in ``cert_pem``."""
    return hashlib.sha256(_pem_to_der(cert_pem)).hexdigest()


def _pem_to_der(cert_pem: bytes) -> bytes:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from exc
    # Re-encode rather than base64-decoding the PEM body so the hash is over canonical DER.
    return cert.public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def init_pki(directory: Path, *, now: datetime | None = None) -> PkiPaths:
    """Create the CA and server certificate if missing; existing files are kept as they are."""
    now = _utc(now)
    directory.mkdir(parents=True, exist_ok=True)
    paths = PkiPaths(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        directory=directory,
    )
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        _write_new(gitignore, _GITIGNORE, _CERT_MODE, exist_ok=True)

    ca_cert, ca_key = _ensure_ca(paths.ca_cert, paths.ca_key, CA_COMMON_NAME, now)
    if not _pair_exists(paths.server_cert, paths.server_key):
        _check_ca_usable(ca_cert, now)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_COMMON_NAME)])
        san = x509.SubjectAlternativeName(
            [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                x509.IPAddress(ipaddress.IPv6Address("::1")),
            ]
        )
        builder = _leaf_builder(
            subject,
            key.public_key(),
            ca_cert,
            now,
            SERVER_VALIDITY,
            ExtendedKeyUsageOID.SERVER_AUTH,
        ).add_extension(san, critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_pair(paths.server_cert, paths.server_key, cert, key, overwrite=False)
    return paths


def issue_participant(
    directory: Path,
    name: str,
    kind: ParticipantKind | str,
    *,
    now: datetime | None = None,
    overwrite: bool = False,
) -> IssuedCert:
    """Issue (or return the existing) client certificate for participant ``name``.

    ``directory`` is the one given to :func:`init_pki`; the CA must already exist there.
    """
    _check_name(name)
    kind = _parse_kind(kind)
    ca_pair = _load_pair(directory / "ca.pem", directory / "ca.key")
    if ca_pair is None:
        raise PkiError(f"no CA in {directory}; run init_pki first")
    return _issue_client(directory / "participants", name, kind, ca_pair, _utc(now), overwrite)


def sign_participant_csr(
    directory: Path,
    csr_pem: bytes,
    name: str,
    kind: ParticipantKind | str,
    *,
    now: datetime | None = None,
    overwrite: bool = False,
) -> SignedCert:
    """Sign a participant's certificate signing request with the CA under ``directory``.

    Only the CSR's public key is used, after its signature proves the requester holds the
    private key. The subject and extensions are the gateway's own (``name``, ``kind``), as for
    :func:`issue_participant`: a CSR cannot ask for another name, a CA bit or server use.
    """
    _check_name(name)
    kind = _parse_kind(kind)
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise PkiError("the CSR's signature does not verify: it is not signed by its own key")
    public_key = csr.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, _CSR_CURVES):
            raise PkiError(f"EC curve {public_key.curve.name} is not accepted; use P-256 or P-384")
    elif isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < _CSR_MIN_RSA_BITS:
            raise PkiError(f"RSA keys must have at least {_CSR_MIN_RSA_BITS} bits")
    else:
        raise PkiError("the CSR's key must be EC (P-256, P-384) or RSA")
    ca_pair = _load_pair(directory / "ca.pem", directory / "ca.key")
    if ca_pair is None:
        raise PkiError(f"no CA in {directory}; run init_pki first")
    now = _utc(now)
    _check_ca_usable(ca_pair[0], now)
    out_dir = directory / "participants"
    cert_path = out_dir / f"{name}.pem"
    if not overwrite and cert_path.exists():
        raise PkiError(f"{cert_path} already exists; pass overwrite=True to reissue")
    if (out_dir / f"{name}.key").exists():
        # A key beside the certificate would no longer match it.
        raise PkiError(f"{out_dir / (name + '.key')} exists: that participant's key is held here")
    out_dir.mkdir(parents=True, exist_ok=True)
    cert = _participant_cert(name, kind, public_key, ca_pair, now)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    _write_new(cert_path, cert_pem, _CERT_MODE, replace=overwrite)
    return SignedCert(cert_path, fingerprint_sha256(cert_pem), x5t_s256(_pem_to_der(cert_pem)))


def issue_foreign_ca_client(
    directory: Path,
    name: str,
    *,
    kind: ParticipantKind | str = ParticipantKind.CREDIT_AGENCY,
    now: datetime | None = None,
) -> IssuedCert:
    """Issue a participant-shaped client cert signed by an unrelated CA under ``directory/foreign``.

    Identical in form to :func:`issue_participant` output, so a gateway refusing it proves
    the refusal comes from the chain of trust, not from the certificate's contents.
    """
    _check_name(name)
    kind = _parse_kind(kind)
    now = _utc(now)
    foreign = directory / "foreign"
    foreign.mkdir(parents=True, exist_ok=True)
    ca_pair = _ensure_ca(foreign / "ca.pem", foreign / "ca.key", FOREIGN_CA_COMMON_NAME, now)
    return _issue_client(foreign / "participants", name, kind, ca_pair, now, overwrite=False)


# ---------------------------------------------------------------------------
# Certificate building
# ---------------------------------------------------------------------------


def _ensure_ca(
    cert_path: Path, key_path: Path, common_name: str, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    existing = _load_pair(cert_path, key_path)
    if existing is not None:
        return existing
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        # path_length=0: this CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_pair(cert_path, key_path, cert, key, overwrite=False)
    return cert, key


def _leaf_builder(
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    ca_cert: x509.Certificate,
    now: datetime,
    validity: timedelta,
    eku: x509.ObjectIdentifier,
) -> x509.CertificateBuilder:
    # A leaf outliving its CA would just fail verification later, so cap it at the CA's expiry.
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )


def _issue_client(
    out_dir: Path,
    name: str,
    kind: ParticipantKind,
    ca_pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    now: datetime,
    overwrite: bool,
) -> IssuedCert:
    cert_path, key_path = out_dir / f"{name}.pem", out_dir / f"{name}.key"
    if not overwrite and _pair_exists(cert_path, key_path):
        existing = cert_path.read_bytes()
        existing_kind = _subject_value(
            x509.load_pem_x509_certificate(existing), NameOID.ORGANIZATION_NAME
        )
        # Silently handing back a cert for another kind would grant the wrong role.
        if existing_kind != kind.value:
            raise PkiError(
                f"{cert_path} exists with kind {existing_kind!r}, not {kind.value!r}; "
                "pass overwrite=True to reissue"
            )
        return _issued(cert_path, key_path, existing)

    _check_ca_usable(ca_pair[0], now)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _participant_cert(name, kind, key.public_key(), ca_pair, now)
    _write_pair(cert_path, key_path, cert, key, overwrite=overwrite)
    return _issued(cert_path, key_path, cert.public_bytes(serialization.Encoding.PEM))


def _participant_cert(
    name: str,
    kind: ParticipantKind,
    public_key: CertificatePublicKeyTypes,
    ca_pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    now: datetime,
) -> x509.Certificate:
    """The one shape of a participant's certificate, whoever made its key."""
    ca_cert, ca_key = ca_pair
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, kind.value),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, PARTICIPANT_OU),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    san = x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier(PARTICIPANT_URI_PREFIX + name)]
    )
    return (
        _leaf_builder(
            subject, public_key, ca_cert, now, PARTICIPANT_VALIDITY, ExtendedKeyUsageOID.CLIENT_AUTH
        )
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _issued(cert_path: Path, key_path: Path, cert_pem: bytes) -> IssuedCert:
    return IssuedCert(
        cert_path=cert_path,
        key_path=key_path,
        fingerprint_sha256=fingerprint_sha256(cert_pem),
        x5t_s256=x5t_s256(_pem_to_der(cert_pem)),
    )


# ---------------------------------------------------------------------------
# Validation and loading
# ---------------------------------------------------------------------------


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    # A naive time would be read as UTC by cryptography, silently shifting validity by the
    # local offset; make callers say what they mean.
    if now.tzinfo is None or now.utcoffset() is None:
        raise PkiError("now must be timezone-aware")
    return now.astimezone(UTC)


def _check_name(name: str) -> None:
    # fullmatch (not match + $) so a trailing newline cannot slip through; the name becomes
    # a file name, so this also rules out path traversal.
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise PkiError(f"invalid participant name {name!r}: must match ^[a-z0-9][a-z0-9-]{{0,62}}$")


def _parse_kind(kind: ParticipantKind | str) -> ParticipantKind:
    try:
        return ParticipantKind(kind)
    except ValueError:
        raise PkiError(f"unknown participant kind {kind!r}") from None


def _check_ca_usable(ca_cert: x509.Certificate, now: datetime) -> None:
    if ca_cert.not_valid_after_utc <= now:
        raise PkiError(
            f"CA {ca_cert.subject.rfc4514_string()} expired at {ca_cert.not_valid_after_utc}; "
            "remove the PKI directory to start over"
        )


def _subject_value(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(oid)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _pair_exists(cert_path: Path, key_path: Path) -> bool:
    """True if both exist, False if neither; a lone half is an error, not a cue to regenerate."""
    has_cert, has_key = cert_path.exists(), key_path.exists()
    if has_cert != has_key:
        present, missing = (cert_path, key_path) if has_cert else (key_path, cert_path)
        raise PkiError(
            f"{present} exists but {missing} does not; refusing to guess, remove or restore it"
        )
    return has_cert


def _load_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not _pair_exists(cert_path, key_path):
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"cannot load {cert_path} / {key_path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_path} is not an EC private key")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
        raise PkiError(f"{key_path} does not match {cert_path}")
    return cert, key


# ---------------------------------------------------------------------------
# Atomic, permission-safe file writes
# ---------------------------------------------------------------------------


def _write_pair(
    cert_path: Path,
    key_path: Path,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    overwrite: bool,
) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first, so a published certificate always has its key beside it.
    _write_new(key_path, key_pem, _KEY_MODE, replace=overwrite)
    _write_new(
        cert_path, cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE, replace=overwrite
    )


def _write_new(
    path: Path, data: bytes, mode: int, *, replace: bool = False, exist_ok: bool = False
) -> None:
    """Write ``data`` to ``path`` atomically with ``mode`` set from creation.

    Without ``replace`` an existing ``path`` is never clobbered, even by a concurrent writer:
    PkiError (or nothing, with ``exist_ok``) instead.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL + mode at open: the file never exists with looser permissions, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            if mode != _KEY_MODE:
                # Certificates are public; make them readable whatever the umask (e.g. a
                # gateway container running as another uid). Keys keep the umask-narrowed mode.
                os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as fh:
                fd = -1  # now owned by fh
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            if fd != -1:
                os.close(fd)
        if replace:
            os.replace(tmp, path)
            return
        try:
            # link() refuses an existing target, which replace() would silently overwrite.
            os.link(tmp, path)
        except FileExistsError:
            if exist_ok:
                return
            raise PkiError(f"{path} already exists; refusing to overwrite it") from None
        except OSError:
            # Filesystems without hard links: best effort, with a small check-then-act race.
            if path.exists():
                if exist_ok:
                    return
                raise PkiError(f"{path} already exists; refusing to overwrite it") from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
