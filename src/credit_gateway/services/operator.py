"""Operator actions on participants, agreements, subjects' keys and the catalog (the CLI calls
these), each one transaction of the registry (storage/registry.py) on a database opened for it,
with its audit entry (MAC'd under the key derived from the master key, as the server's are)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from credit_gateway.adapters.storage import registry
from credit_gateway.adapters.storage.db import Database
from credit_gateway.auth.binding import x5t_s256
from credit_gateway.auth.scopes import SCOPES_BY_KIND
from credit_gateway.domain.agreements import Agreement, AgreementStatus
from credit_gateway.domain.audit import MAC_LABEL
from credit_gateway.domain.canonical import CanonicalError, parse_json_object
from credit_gateway.domain.catalog import Catalog
from credit_gateway.domain.identifiers import (
    IdentifierError,
    SubjectKind,
    UnifiedSocialCreditCode,
    parse_subject_code,
)
from credit_gateway.domain.participants import (
    Licence,
    Participant,
    ParticipantKind,
    ParticipantStatus,
)
from credit_gateway.domain.release import Subject as NamedSubject
from credit_gateway.domain.timestamps import civil_date
from credit_gateway.errors import InvalidArgument
from credit_gateway.exchange import agreements as signing
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import utcnow

# What joserfc raises for a JWK (Set) it cannot import: its own errors, bad base64, missing members.
_BAD_JWK = (JoseError, ValueError, TypeError, KeyError)


@contextmanager
def database(settings: Settings) -> Iterator[Database]:
    """The database for one action: the CLI makes one per process."""
    db = Database.connect(settings.effective_database_url)
    try:
        yield db
    finally:
        db.dispose()


def mac_key(settings: Settings) -> bytes:
    """The audit entries' MAC key: without it an action's entry would be quarantined."""
    from credit_gateway.crypto.master import MasterKey

    return MasterKey.load(settings.master_key_file).derive(MAC_LABEL)


def read_json_object(path: Path) -> tuple[bytes, dict[str, Any]]:
    """A JSON object file the operator names, as its bytes and parsed (strictly: no duplicate
    keys). Bad JSON is a CanonicalError naming the file; an unreadable file stays an OSError."""
    raw = path.read_bytes()
    try:
        return raw, parse_json_object(raw)
    except CanonicalError as exc:
        raise CanonicalError(f"{path}: {exc.message}") from exc


def certificate_facts(path: Path) -> tuple[str, datetime, dict[str, Any]]:
    """x5t#S256, expiry, and the public JWK (kid = the thumbprint) of a PEM certificate."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidArgument.field("cert", f"{path} is not a readable PEM certificate") from exc
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise InvalidArgument.field("cert", "only EC P-256 certificates are supported")
    thumbprint = x5t_s256(cert.public_bytes(Encoding.DER))
    jwk = ECKey.import_key(public, {"kid": thumbprint, "alg": "ES256", "use": "sig"}).as_dict(
        private=False
    )
    return thumbprint, cert.not_valid_after_utc, jwk


def add_participant(
    settings: Settings,
    *,
    participant_id: str,
    kind: str,
    org_code: str,
    name: str,
    certificates: Sequence[Path],
    scopes: Sequence[str] | None = None,
    licence: tuple[str, datetime] | None = None,
    jwks_file: Path | None = None,
) -> Participant:
    if not participant_id or not kind or not org_code or not name:
        raise InvalidArgument("participants add needs --id, --kind, --org-code and --name")
    try:
        code = UnifiedSocialCreditCode.parse(org_code).value
    except IdentifierError as exc:
        raise InvalidArgument.field("org_code", exc.message, reason="BAD_IDENTIFIER") from exc
    try:
        participant_kind = ParticipantKind(kind)
    except ValueError:
        raise InvalidArgument.field("kind", f"{kind!r} is not a participant kind") from None
    allowed = SCOPES_BY_KIND[participant_kind]
    granted = frozenset(scopes) if scopes else allowed
    if not granted <= allowed:
        raise InvalidArgument.field("scopes", f"{sorted(granted - allowed)} are not for a {kind}")
    facts = [certificate_facts(p) for p in certificates]
    if not facts:
        raise InvalidArgument.field("cert", "register at least one certificate")
    if jwks_file is not None:
        _, jwks = read_json_object(jwks_file)
        try:  # refuses a malformed set before it is stored
            KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except _BAD_JWK as exc:
            raise InvalidArgument.field("jwks", f"{jwks_file} is not a JWK Set") from exc
    else:
        jwks = {"keys": [jwk for _, _, jwk in facts]}
    lic = None
    if licence is not None:
        valid_until = (
            licence[1] if licence[1].tzinfo else licence[1].replace(tzinfo=utcnow().tzinfo)
        )
        lic = Licence(licence[0], valid_until)
    participant = Participant(
        participant_id, participant_kind, code, name, ParticipantStatus.ACTIVE, granted, lic
    )
    certs = [(t, n) for t, n, _ in facts]
    with database(settings) as db:
        registry.add_participant(db, mac_key(settings), participant, jwks, certs, utcnow())
    return participant


def suspend_participant(settings: Settings, participant_id: str) -> None:
    with database(settings) as db:
        registry.suspend_participant(db, mac_key(settings), participant_id, utcnow())


def list_participants(settings: Settings) -> list[Participant]:
    with database(settings) as db:
        return registry.list_participants(db)


def change_licence(
    settings: Settings, participant_id: str, *, valid_until: datetime | None, revoked: bool | None
) -> None:
    """An expired or revoked licence stops all access at the participant's next call."""
    if valid_until is not None and valid_until.tzinfo is None:
        valid_until = valid_until.replace(tzinfo=utcnow().tzinfo)
    with database(settings) as db:
        registry.set_licence(
            db,
            mac_key(settings),
            participant_id,
            utcnow(),
            valid_until=valid_until,
            revoked=revoked,
        )


def register_agreement(
    settings: Settings, document: bytes, parsed: dict[str, Any], counterparty: str
) -> Agreement:
    """Verifies both signatures on the agreement document (its bytes, and parsed) against the
    operator key and the counterparty's registered keys, and registers it."""
    center = signing.load_private_key(settings.operator_key_file).public_key()
    now = utcnow()

    def verify(jwks: dict[str, object] | None) -> Agreement:
        return signing.verify(parsed, center, jwks, now)

    with database(settings) as db:
        return registry.register_agreement(
            db, mac_key(settings), counterparty, verify, document, now
        )


def suspend_agreement(settings: Settings, agreement_id: str) -> None:
    with database(settings) as db:
        registry.suspend_agreement(db, mac_key(settings), agreement_id, utcnow())


def list_agreements(settings: Settings) -> list[tuple[Agreement, AgreementStatus]]:
    with database(settings) as db:
        return registry.list_agreements(db)


def register_subject_key(
    settings: Settings, subject_code: str, jwk_file: Path, kind: SubjectKind | None = None
) -> str:
    """Registers the subject's public key (the subject row is made if it has none yet). `kind`:
    the kind of subject the code names (None: not said; a code valid both as a resident id and
    as a USCC is then refused SUBJECT_KIND_REQUIRED)."""
    from credit_gateway.crypto.master import MasterKey, SubjectLookup

    now = utcnow()
    try:
        kind, parsed = parse_subject_code(subject_code, today=civil_date(now), kind=kind)
    except IdentifierError as exc:
        raise InvalidArgument.field("code", exc.message, reason=exc.reason) from exc
    _, document = read_json_object(jwk_file)
    try:
        jwk = ECKey.import_key(document)
    except _BAD_JWK as exc:
        raise InvalidArgument.field("jwk", f"{jwk_file} is not an EC JWK") from exc
    if jwk.curve_name != "P-256" or jwk.is_private:
        raise InvalidArgument.field("jwk", "give the public half of an EC P-256 key")
    master = MasterKey.load(settings.master_key_file)
    code = parsed.value
    subject = NamedSubject(kind, code, SubjectLookup(master)(code))
    public = json.dumps(jwk.as_dict(private=False), sort_keys=True)
    with database(settings) as db:
        registry.register_subject_key(db, master, subject, public, now)
    return str(jwk.thumbprint())


def load_catalog(settings: Settings, document: dict[str, Any]) -> Catalog:
    """Loads a catalog document and makes it current (`catalog load`), on record."""
    with database(settings) as db:
        return registry.load_catalog(db, mac_key(settings), document, utcnow())
