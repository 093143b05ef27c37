"""Our log as a witness's client (services/witness.py), with the transport, the proofs and the
store faked: which cosignatures are kept, the one retry on 409, what a failure leaves, and that
each witness is sent the newest checkpoint on its own."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.crypto.master import MasterKey
from credit_gateway.crypto.notes import (
    ED25519,
    Checkpoint,
    Note,
    NoteSignature,
    Signer,
    cosign,
    sign_checkpoint,
)
from credit_gateway.domain.witness import AddCheckpoint
from credit_gateway.services.witness import (
    SIZE_CONTENT_TYPE,
    Answer,
    Cosigning,
    WitnessClient,
    conflict_size,
    verified_cosignatures,
    witness_signer,
)

LOG = Signer("log.test/audit", ED25519, Ed25519PrivateKey.generate())
WITNESS = witness_signer(MasterKey(bytes(32)), "witness.test/w1")
OTHER = witness_signer(MasterKey(bytes(range(32))), "other.test/w")


def note(size: int) -> Note:
    digest = hashlib.sha256(size.to_bytes(8, "big")).digest()
    return sign_checkpoint(Checkpoint(LOG.name, size, digest), LOG)


def line(n: Note, signer: Signer = WITNESS, at: int = 1_700_000_000) -> bytes:
    return cosign(n, signer, at).line().encode()


def ok(body: bytes) -> Answer:
    return Answer(200, "text/plain", body)


def conflict(size: int) -> Answer:
    return Answer(409, SIZE_CONTENT_TYPE, f"{size}\n".encode())


@dataclass
class Fake:
    """A witness answering from a script, and our log's proofs and store."""

    answers: list[Answer | Exception]
    sent: list[AddCheckpoint] = field(default_factory=list)
    proofs: list[tuple[int, int]] = field(default_factory=list)
    stored: list[tuple[int, list[NoteSignature]]] = field(default_factory=list)

    async def post(self, body: bytes) -> Answer:
        self.sent.append(AddCheckpoint.parse(body))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def proof(self, old: int, new: int) -> list[bytes]:
        self.proofs.append((old, new))
        return [bytes(32)]

    async def store(self, size: int, signatures: list[NoteSignature]) -> None:
        self.stored.append((size, signatures))

    def client(self) -> WitnessClient:
        return WitnessClient("https://w.test", WITNESS.verifier, self.post, self.proof, self.store)


def test_only_the_witness_keys_valid_cosignatures_are_kept() -> None:
    n = note(10)
    forged = cosign(note(11), WITNESS, 5).line().encode()  # the witness's key, another text
    answer = line(n, OTHER) + forged + b"junk\n" + line(n)
    kept = verified_cosignatures(n, answer, WITNESS.verifier)
    assert [(s.name, s.key_id) for s in kept] == [(WITNESS.name, WITNESS.verifier.key_id)]
    assert verified_cosignatures(n, b"\xff\xfe", WITNESS.verifier) == []


def test_a_first_submission_says_old_0_and_stores_the_cosignature() -> None:
    fake = Fake([ok(line(note(10)))])
    client = fake.client()
    assert asyncio.run(client.submit(10, note(10))) == 1
    assert [(r.old_size, r.proof) for r in fake.sent] == [(0, ())]
    assert [size for size, _ in fake.stored] == [10]
    assert client.cosigned == 10


def test_a_409_names_the_witness_size_and_the_one_retry_carries_its_proof() -> None:
    fake = Fake([conflict(4), ok(line(note(10)))])
    client = fake.client()
    assert asyncio.run(client.submit(10, note(10))) == 1
    assert [r.old_size for r in fake.sent] == [0, 4]
    assert fake.proofs == [(4, 10)]
    assert client.cosigned == 10


@pytest.mark.parametrize(
    "answers",
    [
        [conflict(4), conflict(6)],  # a second 409: no loop
        [conflict(0)],  # the size we sent: the same size over another root, or nonsense
        [Answer(409, "text/plain", b"4\n")],  # not a size answer
        [Answer(422, "text/plain", b"proof\n")],
        [ok(b"")],  # a 200 without a cosignature of ours
        [TimeoutError()],  # down or slow
    ],
)
def test_a_failure_is_logged_and_stores_nothing(
    answers: list[Answer | Exception], caplog: pytest.LogCaptureFixture
) -> None:
    fake = Fake(list(answers))
    client = fake.client()
    assert asyncio.run(client.submit(10, note(10))) == 0
    assert fake.stored == []
    assert "witness did not cosign" in caplog.text
    assert len(fake.sent) <= 2


def test_a_witness_ahead_of_this_checkpoint_is_left_until_we_pass_it() -> None:
    fake = Fake([conflict(12)])  # another replica's batch reached it first
    client = fake.client()
    assert asyncio.run(client.submit(10, note(10))) == 0
    assert (len(fake.sent), fake.proofs, client.cosigned) == (1, [], 12)


@given(st.integers(min_value=0, max_value=10**20))
def test_a_size_answer_is_one_decimal_line(size: int) -> None:
    assert conflict_size(conflict(size)) == size


@pytest.mark.parametrize("body", [b"012\n", b"12", b"-1\n", b"1 2\n", b"\n", b"x\n"])
def test_anything_else_is_no_size(body: bytes) -> None:
    assert conflict_size(Answer(409, SIZE_CONTENT_TYPE, body)) is None


def test_each_witness_gets_the_newest_checkpoint_and_a_slow_one_holds_up_no_other() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        release = asyncio.Event()
        slow_sizes: list[int] = []
        fast_sizes: list[int] = []

        def witness(sizes: list[int], gate: Callable[[], Awaitable[object]]) -> WitnessClient:
            async def post(body: bytes) -> Answer:
                request = AddCheckpoint.parse(body)
                await gate()
                sizes.append(int(request.note.text.split("\n")[1]))
                return ok(line(request.note))

            async def proof(old: int, new: int) -> list[bytes]:
                return []

            async def store(size: int, signatures: list[NoteSignature]) -> None:
                return None

            return WitnessClient("https://w.test", WITNESS.verifier, post, proof, store)

        async def no_wait() -> None:
            return None

        cosigning = Cosigning([witness(slow_sizes, release.wait), witness(fast_sizes, no_wait)])
        cosigning.start()
        for size in (1, 2, 3):
            cosigning.offer(size, note(size))
            await asyncio.sleep(0.01)
        # The slow witness is still on 1; 2 was replaced by 3 while it waited.
        release.set()
        await asyncio.sleep(0.05)
        await cosigning.stop()
        return slow_sizes, fast_sizes

    slow, fast = asyncio.run(scenario())
    assert fast == [1, 2, 3]
    assert slow == [1, 3]
