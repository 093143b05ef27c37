"""The schema. Alembic migrations in storage/migrations are generated from these tables and
`alembic check` (a test) keeps the two in step.

Identifiers are opaque strings made by the application (a prefix and random base32), so replicas
never contend for a sequence; the audit log alone keeps a database sequence for its order.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false

from credit_gateway.adapters.storage.types import Blob, ExactText, Hash, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = String(40)
Json = JSON().with_variant(Text(), "mysql", "mariadb")  # stored as canonical JSON text there
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), date: Date()}


# --- trust -------------------------------------------------------------------------------------


class ParticipantRow(Base):
    __tablename__ = "participants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    org_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    licence_number: Mapped[str | None] = mapped_column(String(64))
    licence_valid_until: Mapped[datetime | None]
    licence_revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    scopes: Mapped[str] = mapped_column(Text)  # space-separated, as in OAuth
    jwks: Mapped[str] = mapped_column(Text)  # the participant's public JWK Set, JSON
    created_at: Mapped[datetime]


class CertificateRow(Base):
    __tablename__ = "participant_certificates"
    x5t_s256: Mapped[str] = mapped_column(String(64), primary_key=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    not_after: Mapped[datetime]


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # current, previous, retired
    private_key: Mapped[bytes] = mapped_column(Blob)  # PKCS8 DER, sealed under the master key
    created_at: Mapped[datetime]


class DataKeyRow(Base):
    __tablename__ = "data_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(Blob)
    current: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]


class RevokedTokenRow(Base):
    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class UsedAssertionRow(Base):
    """RFC 7523 section 3 item 7: a client assertion's jti is accepted once."""

    __tablename__ = "used_assertions"
    issuer: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AgreementRow(Base):
    __tablename__ = "agreements"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    counterparty_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    document: Mapped[bytes] = mapped_column(Blob)  # the signed document, as registered
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    registered_at: Mapped[datetime]


class QuotaUsageRow(Base):
    __tablename__ = "quota_usage"
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    records: Mapped[int] = mapped_column(Integer, default=0)


# --- records -----------------------------------------------------------------------------------


class CatalogRow(Base):
    __tablename__ = "catalogs"
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    document: Mapped[bytes] = mapped_column(Blob)  # canonical JSON of the catalog file
    digest: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime]
    current: Mapped[bool] = mapped_column(Boolean)


class SubjectRow(Base):
    __tablename__ = "subjects"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    lookup: Mapped[str] = mapped_column(String(64), unique=True)  # HMAC of the code
    kind: Mapped[str] = mapped_column(String(32))
    code_key_id: Mapped[str] = mapped_column(String(64))
    code_sealed: Mapped[bytes] = mapped_column(Blob)
    public_jwk: Mapped[str | None] = mapped_column(Text)  # for signed written consent
    created_at: Mapped[datetime]


# records.state: in service, or out of it (Art 29-31: corrected, restored, deleted, or its
# disclosure period ended), kept as the archive.
ACTIVE = "active"
ARCHIVED = "archived"


class RecordRow(Base):
    __tablename__ = "records"
    __table_args__ = (UniqueConstraint("provider_id", "provider_record_id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    provider_record_id: Mapped[str] = mapped_column(ExactText(128))
    item_code: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))
    occurred_at: Mapped[datetime]
    submitted_at: Mapped[datetime]
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the canonical bytes
    payload_key_id: Mapped[str | None] = mapped_column(String(64))  # None: stored in clear (OPEN)
    payload: Mapped[bytes] = mapped_column(Blob)
    signature: Mapped[bytes] = mapped_column(Blob)
    signer_kid: Mapped[str] = mapped_column(String(128))
    # Art 22: the written notice's number and the time it reached the subject.
    notice_reference: Mapped[str | None] = mapped_column(String(128))
    notice_delivered_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16))  # active, or archived (out of service)
    labels: Mapped[str] = mapped_column(String(200), default="")
    # The end of the record's disclosure period, from its catalog item's rule and its payload
    # (a punishment's severity), set when stored; a restoration may bring it forward. None:
    # stored before 0008, the item's default period applies.
    disclosure_until: Mapped[datetime | None]
    # Art 29: when the subject's objection that is still unanswered was filed (the label, and
    # 15 days on the suspension, follow from it); None once answered or when there is none.
    objection_filed_at: Mapped[datetime | None]
    # Art 29-31: when and why the record left service (corrected, restored, deleted).
    archived_at: Mapped[datetime | None]
    archive_reason: Mapped[str | None] = mapped_column(String(16))
    replaces: Mapped[str | None] = mapped_column(Id)  # the record an upheld objection corrected
    # A record a platform pushed (ExchangeService.PushRecords): provider_id is that platform and
    # provider_record_id its origin_record_id; signature and signer_kid are the providing
    # unit's, by a key of provider_jwks, which the origin's signature vouches for.
    origin_provider_code: Mapped[str | None] = mapped_column(String(64))
    provider_jwks: Mapped[str | None] = mapped_column(Text)
    origin_signature: Mapped[bytes | None] = mapped_column(Blob)
    origin_kid: Mapped[str | None] = mapped_column(String(128))
    # The providing unit's own record id, which its signature covers (provider_record_id holds
    # the origin's): with provider_jwks, the provider's signature verifies from the row alone.
    origin_provider_record_id: Mapped[str | None] = mapped_column(ExactText(128))


Index("ix_records_subject_item", RecordRow.subject_id, RecordRow.item_code)
# What `maintain` scans for: records in service whose disclosure period has ended.
Index("ix_records_state_disclosure_until", RecordRow.state, RecordRow.disclosure_until)


# --- subject rights and time rules (Art 29-31) --------------------------------------------------


class ObjectionRow(Base):
    """A subject's objection to one of its records (Art 29).

    pending -> upheld (the provider sent a corrected version: `replacement_id`)
            -> rejected (with the provider's reasons)
    pending -> suspended (15 days without an answer: `maintain` records what the policy
               already enforces by the clock) -> upheld | rejected
    The record's objection_filed_at is set while the objection is open (pending, suspended)."""

    __tablename__ = "objections"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), index=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(ExactText(2000))
    evidence_reference: Mapped[str] = mapped_column(ExactText(256), default="")
    filed_at: Mapped[datetime]
    due_at: Mapped[datetime]  # filed_at + 15 days
    suspended_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    answer: Mapped[str | None] = mapped_column(ExactText(2000))  # the provider's reasons
    replacement_id: Mapped[str | None] = mapped_column(Id)
    answer_entry_id: Mapped[str | None] = mapped_column(Id)  # the answer's audit entry


# `maintain`: pending objections past their due date.
Index("ix_objections_state_due_at", ObjectionRow.state, ObjectionRow.due_at)


class RestorationRow(Base):
    """A providing unit's credit restoration decision (Art 30), kept with the record it took out
    of service: the signed decision as received, so the archive proves why."""

    __tablename__ = "restorations"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), unique=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    decision_number: Mapped[str] = mapped_column(ExactText(128))
    decided_at: Mapped[datetime]
    document: Mapped[bytes] = mapped_column(Blob)  # the canonical bytes the provider signed
    signature: Mapped[bytes] = mapped_column(Blob)
    signer_kid: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime]


class RunnerLeaseRow(Base):
    """Who runs a singleton job (the `maintain` scheduler): one holder at a time across
    replicas, until its lease runs out."""

    __tablename__ = "runner_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime]


# --- exchange ----------------------------------------------------------------------------------


class RecordChangeRow(Base):
    """The change feed: a record's change, written in the change's own transaction. `seq` comes
    from feed_head's counter, taken under its row lock, so changes commit in seq order and a
    subscriber reading past the highest seq it saw never skips one that commits later."""

    __tablename__ = "record_changes"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"))
    item_code: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(Id)
    kind: Mapped[str] = mapped_column(String(16))  # new, corrected, suspended, restored, deleted
    replaces: Mapped[str | None] = mapped_column(Id)
    at: Mapped[datetime]


class FeedHeadRow(Base):
    """The one row: the last seq given to a change, and the floor below which changes were
    pruned (a cursor under it is refused: resynchronise with PullRecords)."""

    __tablename__ = "feed_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    floor: Mapped[int] = mapped_column(BigInteger)


class PeerRow(Base):
    """A platform this gateway delivers to: its gRPC and token endpoints, its CA, and the client
    certificate (and key, sealed) that it issued us. `participant_id`: the platform as
    registered here, whose agreement says what is delivered."""

    __tablename__ = "peers"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), unique=True)
    grpc_address: Mapped[str] = mapped_column(String(255))
    token_url: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(64))  # who we are at the peer
    purpose: Mapped[str] = mapped_column(String(64))  # what the delivery is for (the agreement's)
    ca_pem: Mapped[str] = mapped_column(Text)
    cert_pem: Mapped[str] = mapped_column(Text)
    key_key_id: Mapped[str] = mapped_column(String(64))
    key_sealed: Mapped[bytes] = mapped_column(Blob)
    created_at: Mapped[datetime]


class OutboxRow(Base):
    """A record to deliver to a peer, written in the record's own transaction (a transactional
    outbox). pending -> delivered, or -> dead after the configured attempts (`outbox retry`)."""

    __tablename__ = "outbox"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    peer: Mapped[str] = mapped_column(ForeignKey("peers.name"))
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"))
    partition: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


Index("ix_outbox_due", OutboxRow.state, OutboxRow.partition, OutboxRow.next_at)


class OutboxLeaseRow(Base):
    """Who delivers a partition of the outbox: one holder at a time across replicas, until its
    lease runs out (renewed while it works)."""

    __tablename__ = "outbox_leases"
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime]


# --- consent -----------------------------------------------------------------------------------


class ConsentRow(Base):
    __tablename__ = "consents"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    grantee_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    # The terms as canonical JSON (no personal data: read on every authorized inquiry), and the
    # whole artefact the subject consented to, which names the subject's code: sealed.
    terms: Mapped[bytes] = mapped_column(Blob)
    artefact_key_id: Mapped[str] = mapped_column(String(64))
    artefact_sealed: Mapped[bytes] = mapped_column(Blob)
    subject_signature: Mapped[bytes | None] = mapped_column(Blob)
    evidence: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    granted_at: Mapped[datetime]
    status_changed_at: Mapped[datetime]
    # PIPL Art 31: a subject under 14 grants only with its guardian's authorisation, recorded
    # here: the guardian (a registered subject) and its signature over the same terms.
    guardian_subject_id: Mapped[str | None] = mapped_column(ForeignKey("subjects.id"))
    guardian_signature: Mapped[bytes | None] = mapped_column(Blob)


# `maintain`: consents still open on record whose validity has ended.
Index("ix_consents_status_valid_until", ConsentRow.status, ConsentRow.valid_until)


class ConsentRequestRow(Base):
    __tablename__ = "consent_requests"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    grantee_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    terms: Mapped[bytes] = mapped_column(Blob)
    status: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    consent_id: Mapped[str | None] = mapped_column(Id)


class ConsentEventRow(Base):
    """Every consent and request transition, in order; WatchConsents tails it (any replica)."""

    __tablename__ = "consent_events"
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    grantee_id: Mapped[str] = mapped_column(String(64), index=True)
    consent_id: Mapped[str | None] = mapped_column(Id)
    request_id: Mapped[str | None] = mapped_column(Id)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


# --- audit -------------------------------------------------------------------------------------


class AuditEntryRow(Base):
    """One decision: a release or a refusal. `body` is the canonical entry, `leaf_hash` its
    RFC 9162 leaf hash, so the Merkle integrator can build the tree from this table alone."""

    __tablename__ = "audit_entries"
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(Id, unique=True)
    at: Mapped[datetime]
    caller: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(Id, index=True)
    consent_id: Mapped[str | None] = mapped_column(Id, index=True)
    agreement_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    body: Mapped[bytes] = mapped_column(Blob)  # empty once pruned past retention
    leaf_hash: Mapped[bytes] = mapped_column(Blob)
    # Given by the integrator (adapters/storage/tlog.py) once the entry is committed.
    leaf_index: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # Server defaults: the release path inserts by SQL text naming only the columns it sets.
    pruned: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # HMAC-SHA256 of the body under a key derived from the master key (domain/audit.entry_mac):
    # a row written behind the gateway's back cannot carry one, so the integrator refuses it.
    mac: Mapped[bytes | None] = mapped_column(Hash)
    # Set by the integrator on a row whose MAC or leaf hash does not hold: never integrated,
    # kept as evidence, named by `audit verify`.
    quarantined: Mapped[bool] = mapped_column(Boolean, server_default=false())


class AuditTreeRow(Base):
    """The one row the integrator holds locked: the tree's integrated size and root."""

    __tablename__ = "audit_tree"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(Hash)
    updated_at: Mapped[datetime]
    # Entries up to this seq were written before entries carried a MAC (migration 0005).
    legacy_seq: Mapped[int] = mapped_column(BigInteger)


class AuditNodeRow(Base):
    """A complete subtree's hash (level 0: the leaves); written once, never changed."""

    __tablename__ = "audit_nodes"
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(Hash, index=True)


class AuditCheckpointRow(Base):
    """A signed checkpoint (C2SP signed note), with the cosignatures witnesses returned."""

    __tablename__ = "audit_checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(Hash)
    note: Mapped[bytes] = mapped_column(Blob)
    created_at: Mapped[datetime]


class WitnessedLogRow(Base):
    """As a witness of a peer's log: the checkpoint last cosigned (C2SP tlog-witness)."""

    __tablename__ = "witnessed_logs"
    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(Hash)
    updated_at: Mapped[datetime]


# --- retries -----------------------------------------------------------------------------------


class IdempotencyRow(Base):
    """The answer a keyed release gave (domain/idempotency.py), for a retry within 24 hours:
    sealed, bound to caller, method and key, and written in the release's transaction."""

    __tablename__ = "idempotency_keys"
    caller: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(64), primary_key=True)
    idem_key: Mapped[str] = mapped_column(ExactText(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of the request
    inquiry_id: Mapped[str] = mapped_column(Id)
    answer_key_id: Mapped[str] = mapped_column(String(64))
    answer: Mapped[bytes] = mapped_column(Blob)
    created_at: Mapped[datetime] = mapped_column(index=True)  # purged 24 hours on


def core(row: type[Base]) -> Table:
    """The Core table behind a mapped class, for prebuilt statements on hot paths."""
    return cast(Table, row.__table__)
