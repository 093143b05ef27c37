"""Outbound delivery: the outbox's records sent to peer platforms (ExchangeService.PushRecords
at the peer), decided first by the one release policy. No protobuf, no SQLAlchemy: the wire is
a `Sender` (adapters/grpc/peer_client.py), the rows storage/outbox.py's.

One poll (`Delivery.poll`), for each outbox partition with entries due:
1. take or renew the partition's lease (storage/outbox.take_lease): only its holder delivers it,
   so with several replicas each partition has one deliverer;
2. in ONE transaction: claim up to outbox_batch due entries, in flight (not due) for as long as
   a send may take plus a lease, so that a replica taking the lease after it ran out mid-send
   does not release them again; rebuild each record as its
   provider signed it; per peer, decide the records (domain/exchange.decide_batch on the
   EXCHANGE_DELIVERY channel, under the peer platform's push agreement, with its purpose);
   write the decisions' audit entries, mark the withheld entries `withheld` (never sent) and
   those that cannot be rebuilt `dead`. It commits BEFORE anything is sent;
3. send each peer's released records as one PushRecords stream, each signed by us as origin;
4. in one transaction, settle each entry: ACCEPTED or DUPLICATE -> delivered; REJECTED -> dead at
   once (a retry cannot fix it); the call failing (transport, UNAVAILABLE, deadline, a refusal
   of the call) -> attempts + 1 and due again after `backoff`, dead after outbox_max_attempts.

Exactly once in effect: the peer dedups by (origin platform, origin_record_id), and our origin
record id is our record's id, so an entry sent again (its acknowledgement lost, the process
killed mid-send) comes back DUPLICATE and is delivered. A lease lost mid-send does not send it
again: its claim keeps it from the next holder until the send is over.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509 import load_pem_x509_certificate

from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import feed, outbox, peers, trust
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.auth.binding import x5t_s256
from credit_gateway.crypto.signatures import sign_es256
from credit_gateway.domain.agreements import Operation
from credit_gateway.domain.audit import MAC_LABEL
from credit_gateway.domain.canonical import CanonicalError, canonical_bytes, parse_json_object
from credit_gateway.domain.exchange import Caller, ChangeKind, PendingChange, decide_batch
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.participants import ParticipantStatus
from credit_gateway.domain.policy import AgreementState, Channel, naming
from credit_gateway.domain.pushed import OriginClaim
from credit_gateway.domain.records import Submission, WrittenNotice
from credit_gateway.domain.release import open_record
from credit_gateway.runtime.gateway import Gateway

log = logging.getLogger("credit_gateway.services.delivery")
Run = Callable[..., Awaitable[Any]]  # Blocking.call: a function run on a database thread
WITHHELD = "withheld by the policy"  # a withheld entry's last_error


def backoff(
    attempts: int, base_ms: int, max_ms: int, rand: Callable[[], float] = random.random
) -> timedelta:
    """How long an entry waits after its `attempts`-th failure (1, 2, ...): exponential with
    full jitter, a wait drawn uniformly from [0, min(max_ms, base_ms * 2 ** (attempts - 1))],
    so that entries (and replicas) failing together do not all come back together."""
    if attempts < 1:
        raise ValueError("attempts counts failures: 1 or more")
    ceiling = min(max_ms, base_ms * 2 ** min(attempts - 1, 62))
    return timedelta(milliseconds=ceiling * rand())


def client_key_id(cert_pem: bytes) -> str:
    """The key id the peer registered for us: the x5t#S256 of the certificate it issued us,
    which is the kid `participants add` gives a certificate's key (services/operator.py)."""
    cert = load_pem_x509_certificate(cert_pem)
    return x5t_s256(cert.public_bytes(Encoding.DER))


# --------------------------------------------------------------------------- the wire's side


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    """A stored record as its providing unit submitted and signed it (SubmittedRecord)."""

    provider_record_id: str
    item_code: str
    subject_code: str
    subject_kind: SubjectKind | None  # as the provider said it (None: it did not)
    payload_json: bytes
    occurred_at: datetime
    notice: WrittenNotice | None
    signature: bytes
    key_id: str
    digest: str  # SHA-256 hex of the signed bytes


@dataclass(frozen=True, slots=True)
class Shipment:
    """One PushedRecord: the provider's record, who provided it with the keys its signature
    verifies under, and our signature over them as the origin."""

    entry_id: str
    record: ProviderRecord
    provider_code: str
    provider_jwks: bytes
    origin_record_id: str
    origin_signature: bytes
    origin_key_id: str


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    outcome: Outcome
    error: str = ""  # a rejection's violations


class PeerUnavailable(Exception):
    """The call failed as a whole (no connection, no token, UNAVAILABLE, the deadline, the
    peer refusing the call): nothing is known to be stored there; try again later."""


class Sender(Protocol):
    async def push(self, shipments: Sequence[Shipment]) -> Mapping[int, Acknowledgement]:
        """Sends the shipments as one stream: each one's acknowledgement by its position
        (a position missing: not acknowledged). Raises PeerUnavailable."""
        ...

    async def close(self) -> None: ...


SenderFor = Callable[[peers.PeerCredentials], Sender]


# --------------------------------------------------------------------------- rebuilding


def rebuild(
    held: feed.HeldRecord, provenance: outbox.Provenance, subject_code: str, payload: bytes
) -> ProviderRecord | None:
    """The record as its provider signed it, or None if what is stored does not rebuild the
    signed bytes. The kind of subject is signed as the provider said it, or null if it said
    none; which of the two was signed is the one whose bytes hash to the stored digest."""
    stored = held.stored
    try:
        document = parse_json_object(payload)
    except CanonicalError:
        return None
    for kind in (held.subject_kind, None):
        signed = Submission(
            held.provider_code, provenance.provider_record_id, stored.item_code, subject_code,
            document, stored.occurred_at, provenance.notice, kind,
        )  # fmt: skip
        if hashlib.sha256(signed.signing_bytes()).hexdigest() == provenance.digest:
            return ProviderRecord(
                provenance.provider_record_id, stored.item_code, subject_code, kind,
                canonical_bytes(document), stored.occurred_at, provenance.notice,
                provenance.signature, provenance.signer_kid, provenance.digest,
            )  # fmt: skip
    return None


def ship(
    entry_id: str,
    record_id: str,
    record: ProviderRecord,
    provider_code: str,
    provider_jwks: bytes,
    key: ec.EllipticCurvePrivateKey,
    key_id: str,
) -> Shipment:
    """The record signed by us as its origin (domain/pushed.py), our record id its key."""
    claim = OriginClaim(
        origin_record_id=record_id,
        provider_code=provider_code,
        provider_jwks=provider_jwks,
        record_digest=record.digest,
        provider_signature=record.signature,
    )
    return Shipment(
        entry_id, record, provider_code, provider_jwks, record_id,
        sign_es256(key, claim.signing_bytes()), key_id,
    )  # fmt: skip


# --------------------------------------------------------------------------- settling


@dataclass(frozen=True, slots=True)
class Settlement:
    delivered: tuple[str, ...]
    failures: tuple[outbox.Failure, ...]


@dataclass(frozen=True, slots=True)
class Retrying:
    """How failures are retried: the settings' outbox_* and a random source for the jitter."""

    max_attempts: int
    base_ms: int
    max_ms: int
    rand: Callable[[], float] = random.random

    def failure(self, entry: outbox.Entry, error: str, now: datetime) -> outbox.Failure:
        attempts = entry.attempts + 1
        if attempts >= self.max_attempts:
            return outbox.Failure(entry.id, attempts, None, f"after {attempts} attempts: {error}")
        wait = backoff(attempts, self.base_ms, self.max_ms, self.rand)
        return outbox.Failure(entry.id, attempts, now + wait, error)


def settle(
    entries: Sequence[outbox.Entry],
    answer: Mapping[int, Acknowledgement] | PeerUnavailable,
    retrying: Retrying,
    now: datetime,
) -> Settlement:
    """What becomes of each sent entry (in the order sent) given the peer's answer."""
    delivered: list[str] = []
    failures: list[outbox.Failure] = []
    for index, entry in enumerate(entries):
        if isinstance(answer, PeerUnavailable):
            failures.append(retrying.failure(entry, str(answer) or "peer unavailable", now))
            continue
        ack = answer.get(index)
        if ack is None:
            failures.append(retrying.failure(entry, "not acknowledged by the peer", now))
        elif ack.outcome is Outcome.REJECTED:
            error = f"rejected: {ack.error}"  # dead at once: the same record fails again
            failures.append(outbox.Failure(entry.id, entry.attempts + 1, None, error))
        else:
            delivered.append(entry.id)
    return Settlement(tuple(delivered), tuple(failures))


# --------------------------------------------------------------------------- the worker


@dataclass(frozen=True, slots=True)
class PeerBatch:
    """A peer's released records of one claim, committed as decided, to send."""

    credentials: peers.PeerCredentials
    entries: tuple[outbox.Entry, ...]  # in the order of `shipments`
    shipments: tuple[Shipment, ...]


@dataclass(frozen=True, slots=True)
class Claimed:
    claimed: int  # entries the claim took (a full claim: more may be due)
    batches: tuple[PeerBatch, ...]


class Delivery:
    """The delivery worker of one process (a replica): `holder` names it in the leases."""

    def __init__(
        self, gateway: Gateway, holder: str, sender_for: SenderFor, rand: Callable[[], float]
    ) -> None:
        s = gateway.settings
        self.gateway, self.holder, self.sender_for = gateway, holder, sender_for
        self.mac_key = gateway.master.derive(MAC_LABEL)
        self.retrying = Retrying(
            s.outbox_max_attempts, s.outbox_backoff_ms, s.outbox_backoff_max_ms, rand
        )
        self.batch = s.outbox_batch
        self.lease_time = timedelta(seconds=s.outbox_lease_seconds)
        self.timeout = float(s.peer_timeout_seconds)
        self.send_bound = 2 * self.timeout  # a whole send: its token and its call
        # A claimed entry is settled before then by a worker that lives; one that died leaves
        # it due again then.
        self.in_flight = timedelta(seconds=self.send_bound) + self.lease_time
        self._senders: dict[str, Sender] = {}
        self._busy: set[int] = set()  # partitions this worker is delivering now

    # ---- on the loop

    async def poll(self, run: Run) -> int:
        """Delivers what is due in every partition whose lease this worker holds or takes;
        returns how many entries were settled."""
        due = await run(self.due_partitions)
        # A partition still being delivered by this worker is left to that delivery: the lease
        # keeps other replicas out, not this worker's own next poll.
        started = [p for p in due if p not in self._busy]
        done = await asyncio.gather(
            *(self._partition(p, run) for p in started), return_exceptions=True
        )
        for partition, result in zip(started, done, strict=True):
            if isinstance(result, BaseException):  # the others' deliveries went on regardless
                log.error(
                    "delivery failed",
                    extra={"fields": {"partition": partition, "error": str(result)}},
                )
        return sum(r for r in done if isinstance(r, int))

    async def _partition(self, partition: int, run: Run) -> int:
        self._busy.add(partition)
        settled = 0
        try:
            while await run(self.lease, partition):
                claimed: Claimed = await run(self.prepare, partition)
                sent = await asyncio.gather(*(self._send(b, run) for b in claimed.batches))
                settled += sum(sent)
                if claimed.claimed < self.batch:
                    break
        finally:
            self._busy.discard(partition)
        return settled

    async def _send(self, batch: PeerBatch, run: Run) -> int:
        peer = batch.credentials.peer
        sender = self._senders.get(peer.name)
        if sender is None:
            sender = self._senders[peer.name] = self.sender_for(batch.credentials)
        answer: Mapping[int, Acknowledgement] | PeerUnavailable
        try:
            # The sender bounds each step by the timeout; this bounds the whole (token and call).
            answer = await asyncio.wait_for(sender.push(batch.shipments), self.send_bound)
        except PeerUnavailable as error:
            answer = error
        except TimeoutError:
            answer = PeerUnavailable(f"no answer within {self.send_bound:g} s")
        if isinstance(answer, PeerUnavailable):
            log.warning(
                "delivery failed", extra={"fields": {"peer": peer.name, "error": str(answer)}}
            )
        await run(self.settle, batch, answer)
        return len(batch.entries)

    async def close(self) -> None:
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            await sender.close()

    # ---- on a database thread

    def due_partitions(self) -> list[int]:
        with self.gateway.db.transaction(write=False) as session:
            return outbox.due_partitions(session, self.gateway.clock())

    def lease(self, partition: int) -> bool:
        now = self.gateway.clock()
        with self.gateway.db.transaction() as session:
            return outbox.take_lease(session, partition, self.holder, now, now + self.lease_time)

    def release(self) -> None:
        with self.gateway.db.transaction() as session:
            outbox.release_leases(session, self.holder, self.gateway.clock())

    def prepare(self, partition: int) -> Claimed:
        """Claims, decides and commits one batch of the partition (steps 2 of the module's
        docstring); returns what is to be sent."""
        gw = self.gateway
        now = gw.clock()
        catalog = gw.catalog.get()
        with gw.db.transaction() as session:
            entries = outbox.claim(session, partition, self.batch, now, now + self.in_flight)
            if not entries:
                return Claimed(0, ())
            ids = [e.record_id for e in entries]
            held = feed.held_records(session, ids)
            signed = outbox.provenance(session, ids)
            codes = record_store.subject_codes(
                session, gw.envelope, (h.subject_id for h in held.values())
            )
            built: dict[str, ProviderRecord] = {}
            for record_id in dict.fromkeys(ids):
                record = held.get(record_id)
                rebuilt = (
                    None if record is None else self._rebuild(record, signed[record_id], codes)
                )
                if rebuilt is not None:
                    built[record_id] = rebuilt
            unbuilt = "the stored record does not rebuild the bytes its provider signed"
            outbox.mark_failed(
                session,
                [outbox.Failure(e.id, e.attempts + 1, None, unbuilt)
                 for e in entries if e.record_id not in built],
                now,
            )  # fmt: skip
            by_peer: dict[str, list[outbox.Entry]] = {}
            for entry in entries:
                if entry.record_id in built:
                    by_peer.setdefault(entry.peer, []).append(entry)
            batches = []
            for name, theirs in by_peer.items():
                batch = self._decide(session, name, theirs, held, built, catalog, now)
                if batch is not None:
                    batches.append(batch)
            return Claimed(len(entries), tuple(batches))

    def settle(
        self, batch: PeerBatch, answer: Mapping[int, Acknowledgement] | PeerUnavailable
    ) -> None:
        now = self.gateway.clock()
        done = settle(batch.entries, answer, self.retrying, now)
        with self.gateway.db.transaction() as session:
            outbox.mark_delivered(session, done.delivered, now)
            outbox.mark_failed(session, done.failures, now)

    def _rebuild(
        self, held: feed.HeldRecord, signed: outbox.Provenance, codes: Mapping[str, str]
    ) -> ProviderRecord | None:
        payload = open_record(self.gateway.envelope, held.stored, ()).payload
        return rebuild(held, signed, codes[held.subject_id], payload)

    def _decide(
        self,
        session: Any,
        name: str,
        entries: list[outbox.Entry],
        held: Mapping[str, feed.HeldRecord],
        built: Mapping[str, ProviderRecord],
        catalog: Any,
        now: datetime,
    ) -> PeerBatch | None:
        """The peer's entries decided, their decisions' entries written, the withheld marked;
        the released as a batch to send (None: nothing to send)."""
        credentials = peers.credentials(session, self.gateway.envelope, name)
        assert credentials is not None  # the outbox row's foreign key
        peer = credentials.peer
        participant = trust.get_participant(session, peer.participant_id)
        state = _push_agreement(session, peer.participant_id, now)
        if (
            participant is None
            or state is None
            or participant.status is not ParticipantStatus.ACTIVE
        ):
            # Nothing to decide under: no platform in good standing, or no agreement that names
            # push. Not sent; tried again later, and dead after the attempts.
            why = "PARTICIPANT_SUSPENDED" if state is not None else "AGREEMENT_REQUIRED"
            failures = [self.retrying.failure(e, why, now) for e in entries]
            outbox.mark_failed(session, failures, now)
            return None
        caller = Caller(
            channel=Channel.EXCHANGE_DELIVERY,
            id=participant.id,
            kind=participant.kind,
            agreement=state,
            purpose=peer.purpose,
            method=f"Deliver:{name}",
        )
        changes = [
            PendingChange(
                n, ChangeKind.NEW, held[e.record_id].state, held[e.record_id].subject_id,
                held[e.record_id].subject_kind, e.created_at,
            )
            for n, e in enumerate(entries)
        ]  # fmt: skip
        decision = decide_batch(caller, changes, catalog, now)
        for audit_entry in decision.entries:
            audit_store.append(session, self.mac_key, audit_entry)
        if decision.refusal is not None:
            # The whole batch refused (the agreement suspended or expired...): on record, and
            # tried again later, as a peer that does not answer is.
            failures = [self.retrying.failure(e, decision.refusal.value, now) for e in entries]
            outbox.mark_failed(session, failures, now)
            return None
        released = {o.change.seq for o in decision.outgoing if o.with_content}
        reason_of = {record_id: reason.value for record_id, reason in decision.withheld}
        withheld = {
            e.id: f"{WITHHELD} ({reason_of.get(e.record_id, 'not shared')})"
            for n, e in enumerate(entries)
            if n not in released
        }
        outbox.mark_withheld(session, withheld)
        sent = [e for n, e in enumerate(entries) if n in released]
        if not sent:
            return None
        key = load_pem_private_key(credentials.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)  # peers add accepts no other
        key_id = client_key_id(peer.cert_pem)
        jwks: dict[str, bytes] = {}
        shipments = []
        for e in sent:
            record = held[e.record_id]
            provider = record.provider_code
            if provider not in jwks:
                keys = trust.participant_jwks(session, record.stored.provider_id) or {"keys": []}
                jwks[provider] = json.dumps(keys, sort_keys=True).encode()
            shipments.append(
                ship(e.id, e.record_id, built[e.record_id], provider, jwks[provider], key, key_id)
            )
        return PeerBatch(credentials, tuple(sent), tuple(shipments))


def _push_agreement(session: Any, participant_id: str, now: datetime) -> AgreementState | None:
    """The platform's agreement for delivery: one that names push and is in force now, else the
    latest that names push (the policy then refuses under it, with its reason)."""
    stored = agreement_store.list_agreements(session, counterparty=participant_id)
    judged = naming((AgreementState(a, status) for a, status in stored), Operation.PUSH, now)
    in_force = [state for state, why in judged if why is None]
    chosen = in_force or sorted((s for s, _ in judged), key=lambda s: s.agreement.valid_until)
    return chosen[-1] if chosen else None


__all__ = [
    "Acknowledgement",
    "Delivery",
    "Outcome",
    "PeerUnavailable",
    "ProviderRecord",
    "Sender",
    "Shipment",
    "backoff",
    "client_key_id",
    "rebuild",
    "settle",
]
