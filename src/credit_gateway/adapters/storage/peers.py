"""Peer platforms the gateway delivers to (`credit-gateway peers add|list`): each one's gRPC
address and CA, its token endpoint, and the client certificate and key it issued us. The key is
sealed under the gateway's envelope, bound to the peer's name, as every other sealed column is
bound to its row (records.py): a sealed key moved to another peer's row does not open.

Each operator action here is an audit entry in the action's own transaction (`record_action`,
as storage/registry.py records the others).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import trust
from credit_gateway.adapters.storage.tables import PeerRow
from credit_gateway.crypto.envelope import Envelope
from credit_gateway.domain.agreements import Operation
from credit_gateway.domain.audit import OPERATOR, decision_entry
from credit_gateway.domain.participants import ParticipantKind
from credit_gateway.errors import AlreadyExists, FailedPrecondition, NotFound

PLATFORMS = frozenset({ParticipantKind.NATIONAL_PLATFORM, ParticipantKind.PROVINCIAL_PLATFORM})


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer as listed: everything but its key."""

    name: str
    participant_id: str  # the peer platform as registered here: its agreement says what goes
    grpc_address: str
    token_url: str
    client_id: str  # who we are at the peer
    purpose: str
    ca_pem: bytes
    cert_pem: bytes  # the client certificate the peer issued us
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    peer: Peer
    key_pem: bytes  # opened: for the worker's TLS and signatures, never printed


def key_aad(name: str) -> bytes:
    """What a peer's sealed client key is bound to: the peer's name."""
    return b"peer-key:" + name.encode()


def record_action(
    session: Session,
    mac_key: bytes,
    method: str,
    outcome: str,
    now: datetime,
    items: tuple[str, ...],
) -> None:
    """An operator action's entry ("peers.add", "outbox.retry", "outbox.purge"): caller
    "operator", no subject, `items` naming what it acted on."""
    entry = decision_entry(at=now, caller=OPERATOR, method=method, outcome=outcome, items=items)
    audit_store.append(session, mac_key, entry)


def add_peer(
    session: Session, envelope: Envelope, mac_key: bytes, peer: Peer, key_pem: bytes
) -> Peer:
    """Stores the peer, its key sealed, with the action's audit entry; returns it as stored.
    Without a purpose, the purpose is the one the platform's push agreements name. Refused, with
    nothing stored: a participant not registered here or not a platform, a name or a
    participant that already has a peer, no purpose given and none or several agreed."""
    participant = trust.get_participant(session, peer.participant_id)
    if participant is None:
        raise NotFound(
            f"no participant {peer.participant_id}: register the peer platform first",
            reason="PARTICIPANT_NOT_FOUND",
        )
    if participant.kind not in PLATFORMS:
        raise FailedPrecondition(
            f"{peer.participant_id} is a {participant.kind.value}: a peer is a national or "
            "provincial platform",
            reason="NOT_A_PLATFORM",
        )
    if session.get(PeerRow, peer.name) is not None:
        raise AlreadyExists(f"peer {peer.name} exists", reason="PEER_EXISTS")
    taken = session.scalar(
        select(PeerRow.name).where(PeerRow.participant_id == peer.participant_id)
    )
    if taken is not None:
        raise AlreadyExists(
            f"{peer.participant_id} is already the peer {taken}", reason="PEER_EXISTS"
        )
    if not peer.purpose:
        peer = replace(peer, purpose=_agreed_purpose(session, peer.participant_id))
    key_id, sealed = envelope.seal(key_pem, key_aad(peer.name))
    session.add(
        PeerRow(
            name=peer.name,
            participant_id=peer.participant_id,
            grpc_address=peer.grpc_address,
            token_url=peer.token_url,
            client_id=peer.client_id,
            purpose=peer.purpose,
            ca_pem=peer.ca_pem.decode(),
            cert_pem=peer.cert_pem.decode(),
            key_key_id=key_id,
            key_sealed=sealed,
            created_at=peer.created_at,
        )
    )
    record_action(
        session, mac_key, "peers.add", "ADDED", peer.created_at, (peer.name, peer.participant_id)
    )
    return peer


def _agreed_purpose(session: Session, participant_id: str) -> str:
    purposes = {
        purpose
        for agreement, _ in agreement_store.list_agreements(session, counterparty=participant_id)
        if Operation.PUSH in agreement.operations
        for purpose in agreement.purposes
    }
    if len(purposes) != 1:
        said = f"its agreements name {sorted(purposes)}" if purposes else "no agreement names push"
        raise FailedPrecondition(
            f"give --purpose: the purpose deliveries to {participant_id} are for ({said})",
            reason="PURPOSE_REQUIRED",
        )
    return purposes.pop()


def _peer(row: PeerRow) -> Peer:
    return Peer(
        row.name,
        row.participant_id,
        row.grpc_address,
        row.token_url,
        row.client_id,
        row.purpose,
        row.ca_pem.encode(),
        row.cert_pem.encode(),
        row.created_at,
    )


def list_peers(session: Session) -> list[Peer]:
    return [_peer(r) for r in session.scalars(select(PeerRow).order_by(PeerRow.name))]


def get_peer(session: Session, name: str) -> Peer | None:
    row = session.get(PeerRow, name)
    return None if row is None else _peer(row)


def credentials(session: Session, envelope: Envelope, name: str) -> PeerCredentials | None:
    row = session.get(PeerRow, name)
    if row is None:
        return None
    key_pem = envelope.open(row.key_key_id, bytes(row.key_sealed), key_aad(row.name))
    return PeerCredentials(_peer(row), key_pem)
