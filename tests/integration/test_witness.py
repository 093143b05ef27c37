"""Two gateways on loopback, each with its own PKI, keys and database: A logs releases and asks
B to witness its log (C2SP tlog-witness). A's checkpoint comes to carry B's cosignature; B
refuses a forked checkpoint signed by A's own key and its state does not move; a witness that is
down or silent does not hold A's integration up; concurrent requests never roll B back.

B's database is the configured backend's (the compare-and-set is tested where it can race:
PostgreSQL and MariaDB); A's is a SQLite file of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from support.databases import empty, fresh_database
from support.harness import (
    COMPANY,
    Clock,
    Harness,
    free_port,
    make_agreement,
    metadata,
    start_harness,
)
from support.waiting import wait_until

from credit_gateway.adapters.grpc.v1 import inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.adapters.storage import witness_store
from credit_gateway.adapters.storage.db import make_engine
from credit_gateway.adapters.storage.tables import AuditEntryRow
from credit_gateway.crypto.master import MasterKey
from credit_gateway.crypto.notes import (
    ED25519,
    Checkpoint,
    Note,
    NoteError,
    Signer,
    Verifier,
    cosignature_time,
    sign_checkpoint,
)
from credit_gateway.domain.merkle import LeafHashes, consistency_proof, root
from credit_gateway.domain.witness import AddCheckpoint, Latest
from credit_gateway.errors import NotFound
from credit_gateway.runtime.config import WitnessPeer
from credit_gateway.services import witness as witness_service
from credit_gateway.services.audit import LOG_KEY_LABEL
from credit_gateway.services.witness import SIZE_CONTENT_TYPE, witness_signer, witness_vkey

LOG_ORIGIN = "a.gateway.test/audit"
WITNESS_NAME = "b.gateway.test/witness"


@dataclass
class Pair:
    a: Harness
    b: Harness
    log: Signer  # A's log key: a forked history signed by it is what B must refuse
    witness: Verifier  # B's cosignature key, as A is configured to trust it

    def stored(self) -> Latest | None:
        with self.b.db.transaction(write=False) as session:
            return witness_store.latest(session, LOG_ORIGIN)

    def post(self, body: bytes, method: str = "POST") -> tuple[int, str, bytes]:
        """add-checkpoint to B over HTTPS, as any client may send it (no client certificate)."""
        context = ssl.create_default_context(cafile=str(self.b.settings.ca_cert))
        connection = http.client.HTTPSConnection(
            "localhost", self.b.running.oauth_port, context=context, timeout=10
        )
        try:
            connection.request(method, "/add-checkpoint", body)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A witness that accepts connections and never answers (the kernel's backlog does)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def start_pair(tmp: Path, database_url: str, *extra: WitnessPeer) -> Iterator[Pair]:
    clock = Clock()
    home_a, home_b = tmp / "a" / "var", tmp / "b" / "var"
    # The keys are made first: each gateway's settings name the other's public key.
    master_a = MasterKey.create(home_a / "master.key")
    MasterKey.create(home_b / "master.key")
    witness = Verifier.from_vkey(witness_vkey(home_b / "master.key", WITNESS_NAME))
    engine = make_engine(database_url)
    empty(engine)
    engine.dispose()
    with fresh_database("sqlite", tmp / "a-db") as url_a:
        log = Signer(LOG_ORIGIN, ED25519, Ed25519PrivateKey.from_private_bytes(
            master_a.derive(LOG_KEY_LABEL)))  # fmt: skip
        b = start_harness(
            tmp / "b", tmp / "certs-b", database_url, clock,
            witness_name=WITNESS_NAME, witnessed_logs=[log.verifier.vkey()],
        )  # fmt: skip
        try:
            peer = WitnessPeer(
                f"https://localhost:{b.running.oauth_port}", witness.vkey(), b.settings.ca_cert
            )
            a = start_harness(
                tmp / "a", tmp / "certs-a", url_a, clock,
                audit_origin=LOG_ORIGIN, audit_integrate_ms=50, witness_timeout_seconds=1,
                witnesses=[peer, *extra],
            )  # fmt: skip
            try:
                yield Pair(a, b, log, witness)
            finally:
                a.close()
        finally:
            b.close()


@pytest.fixture
def pair(tmp_path: Path, database_url: str, silent_port: int) -> Iterator[Pair]:
    """Besides B, A asks a witness that never answers and one where nothing listens."""
    silent = WitnessPeer(f"https://localhost:{silent_port}", _other_vkey("silent.test/w"))
    down = WitnessPeer(f"https://localhost:{free_port()}", _other_vkey("down.test/w"))
    yield from start_pair(tmp_path, database_url, silent, down)


def _other_vkey(name: str) -> str:
    return witness_signer(MasterKey(hashlib.sha256(name.encode()).digest()), name).verifier.vkey()


def release(h: Harness, count: int) -> None:
    """``count`` releases through A, each an audit entry."""
    agency = h.participants.get("zx-credit")
    if agency is None:
        agency = h.add_participant("zx-credit", "credit-agency")
        make_agreement(h, agency, categories=("registration",))
    stub = inquiry_pb2_grpc.InquiryServiceStub(agency.channel)
    query = inquiry_pb2.QueryRequest(
        subject_code=COMPANY, purpose="LOAN_APPROVAL", agreement_id="agr-zx-credit"
    )
    for _ in range(count):
        stub.QueryOpen(query, metadata=metadata(h.token(agency)), timeout=5)


def cosigned_size(p: Pair) -> int:
    """The size of A's latest checkpoint if B's cosignature on it verifies, else 0."""
    try:
        signed = p.a.gateway.audit.checkpoint()
        cosignature_time(Note.parse(signed.note), p.witness)
    except (NotFound, NoteError):
        return 0
    return signed.size


def test_a_checkpoint_of_a_comes_to_carry_bs_cosignature(pair: Pair) -> None:
    release(pair.a, 2)
    wait_until(lambda: cosigned_size(pair) >= 2, what="for B's cosignature on A's checkpoint")
    signed = pair.a.gateway.audit.checkpoint()
    when = cosignature_time(Note.parse(signed.note), pair.witness)
    assert abs(when - pair.a.clock.now.timestamp()) < 5  # B's clock is the shared test clock
    assert pair.stored() == Latest(signed.size, signed.root)
    # A later batch is cosigned again: B checked the consistency proof from the size it had.
    release(pair.a, 3)
    wait_until(lambda: cosigned_size(pair) >= signed.size + 3, what="for B's next cosignature")
    latest = pair.a.gateway.audit.checkpoint()
    assert pair.stored() == Latest(latest.size, latest.root)


def test_a_checkpoint_another_process_signed_reaches_the_witness(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `audit export` (or another replica) integrates and signs; A's server still offers it.
    release(pair.a, 1)
    # Every entry so far (the agency's registration and agreement are entries too) integrated
    # and cosigned: what waits for the next integration is then the next releases alone.
    written = _written(pair.a)
    wait_until(lambda: cosigned_size(pair) >= written, what="for the first cosignature")
    integrate = pair.a.gateway.audit.integrate
    monkeypatch.setattr(pair.a.gateway.audit, "integrate", lambda: None)  # A's task: idle
    release(pair.a, 2)
    done = integrate()  # as a CLI process on the same database would
    assert done is not None
    assert done.added == 2
    wait_until(lambda: cosigned_size(pair) >= done.size, what="for the other checkpoint's turn")


def test_a_witness_down_or_silent_does_not_hold_up_integration(pair: Pair) -> None:
    # The fixture's A has two such witnesses besides B, each with a 1 s timeout: every release
    # reaches a checkpoint within a few integrator periods (50 ms) all the same.
    for _ in range(3):
        before = _size(pair.a)
        release(pair.a, 1)
        wait_until(lambda b=before: _size(pair.a) > b, seconds=0.9, what="for the integrator")
    wait_until(lambda: cosigned_size(pair) == _size(pair.a), what="for B, whatever the others do")


def _written(h: Harness) -> int:
    with h.db.transaction(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntryRow)) or 0)


def _size(h: Harness) -> int:
    try:
        return h.gateway.audit.checkpoint().size
    except NotFound:
        return 0


# --- B refuses a fork ----------------------------------------------------------------------

LEAVES = [hashlib.sha256(b"leaf %d" % i).digest() for i in range(64)]
FORK = [hashlib.sha256(b"fork %d" % i).digest() for i in range(64)]


def signed(p: Pair, size: int, leaves: list[bytes] = LEAVES) -> Note:
    return sign_checkpoint(Checkpoint(LOG_ORIGIN, size, root(LeafHashes(leaves), size)), p.log)


def add(p: Pair, old: int, new: int, leaves: list[bytes] = LEAVES) -> tuple[int, str, bytes]:
    proof = tuple(consistency_proof(LeafHashes(leaves), old, new)) if 0 < old < new else ()
    return p.post(AddCheckpoint(old, proof, signed(p, new, leaves)).encode())


@pytest.fixture
def quiet_pair(tmp_path: Path, database_url: str) -> Iterator[Pair]:
    """A asks B nothing of its own here: the checkpoints B sees are the test's, signed by A's
    log key, so A's integrator (which logs no release) never moves B meanwhile."""
    yield from start_pair(tmp_path, database_url)


def test_b_refuses_a_fork_signed_by_as_key_and_its_state_does_not_move(quiet_pair: Pair) -> None:
    p = quiet_pair
    status, _, body = add(p, 0, 8)
    assert status == 200
    assert body.startswith(f"\u2014 {WITNESS_NAME} ".encode())
    cosigned = Note.parse(signed(p, 8).encode() + body)
    assert cosignature_time(cosigned, p.witness) > 0
    before = p.stored()
    assert before == Latest(8, root(LeafHashes(LEAVES), 8))
    # The same size over another tree: 409, with the size B holds.
    assert add(p, 8, 8, FORK) == (409, SIZE_CONTENT_TYPE, b"8\n")
    # A larger tree that does not extend the one cosigned: the proof fails, 422.
    forked = [*LEAVES[:4], *FORK[4:]]
    status, _, _ = add(p, 8, 12, forked)
    assert status == 422
    # A stale old size: 409 naming 8; an unknown origin 404; a bad signature 403; junk 400.
    assert add(p, 4, 12) == (409, SIZE_CONTENT_TYPE, b"8\n")
    other = Signer("elsewhere.test/audit", p.log.kind, p.log.private_key)
    unknown = sign_checkpoint(Checkpoint(other.name, 1, LEAVES[0]), other)
    assert p.post(AddCheckpoint(0, (), unknown).encode())[0] == 404
    impostor = Signer(LOG_ORIGIN, ED25519, Ed25519PrivateKey.generate())
    forged = sign_checkpoint(Checkpoint(LOG_ORIGIN, 12, root(LeafHashes(LEAVES), 12)), impostor)
    assert p.post(AddCheckpoint(8, (), forged).encode())[0] == 403
    assert p.post(b"old 8\n")[0] == 400
    # Bounded as the token endpoint's requests are; only POST.
    assert p.post(b"old 8\n" + b"A" * 70_000)[0] == 413
    assert p.post(b"", method="GET")[0] == 405
    assert p.stored() == before
    # And the true history still goes on.
    assert add(p, 8, 12)[0] == 200
    assert p.stored() == Latest(12, root(LeafHashes(LEAVES), 12))


def test_concurrent_requests_never_roll_the_witness_back(
    quiet_pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = quiet_pair
    assert add(p, 0, 4)[0] == 200
    # B's decision waits (B serves in this process) until a second request's decision joins
    # it, or 2 s: without the row's lock two requests decide on size 4 together and both win;
    # with it the second cannot read until the first has committed, so the first waits alone.
    decide = witness_service.decide
    rendezvous = threading.Barrier(2, timeout=2)

    def slow(*args: Any) -> Checkpoint:
        with contextlib.suppress(threading.BrokenBarrierError):
            rendezvous.wait()
        return decide(*args)

    monkeypatch.setattr(witness_service, "decide", slow)
    sizes = list(range(5, 29))
    barrier = threading.Barrier(len(sizes))
    results: dict[int, int] = {}

    def send(size: int) -> None:
        body = AddCheckpoint(4, tuple(consistency_proof(LeafHashes(LEAVES), 4, size)),
                             signed(p, size)).encode()  # fmt: skip
        barrier.wait()
        results[size] = p.post(body)[0]

    threads = [threading.Thread(target=send, args=(size,)) for size in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [size for size, status in results.items() if status == 200]
    # Every request said old 4: one advanced B, every other found 4 gone (409).
    assert len(won) == 1, results
    assert sorted(results.values()) == [200] + [409] * (len(sizes) - 1)
    assert p.stored() == Latest(won[0], root(LeafHashes(LEAVES), won[0]))
