"""Signed checkpoints: C2SP signed-note, tlog-checkpoint and tlog-cosignature, against the
reference implementations' published keys and notes (golang.org/x/mod/sumdb/note, and the keys
transparency-dev/formats tests parse)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.crypto.notes import (
    COSIGNATURE_V1,
    ED25519,
    Checkpoint,
    Note,
    NoteError,
    NoteSignature,
    Signer,
    Verifier,
    cosign,
    cosignature_time,
    open_checkpoint,
    sign_checkpoint,
    sign_note,
    verify_note,
)

# golang.org/x/mod/sumdb/note, its package documentation's example.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
# Verifier keys other implementations publish: the signed-note example, sumdb's test keys, and
# transparency-dev/formats' (one whose base64 holds a '+', one of type 0x04).
PUBLISHED_VKEYS = [
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    GO_VKEY,
    "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
    "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
    "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
]
ORIGIN = "credit-gateway.hubei.example/audit"


def log_signer() -> Signer:
    return Signer(ORIGIN, ED25519, Ed25519PrivateKey.generate())


def witness_signer(name: str = "witness.example/w1") -> Signer:
    return Signer(name, COSIGNATURE_V1, Ed25519PrivateKey.generate())


def test_the_go_reference_note_signs_and_opens_byte_for_byte() -> None:
    signer = Signer.from_skey(GO_SKEY)
    assert signer.skey() == GO_SKEY
    assert signer.verifier.vkey() == GO_VKEY
    assert sign_note(GO_TEXT, signer).encode() == GO_NOTE  # Ed25519 is deterministic
    note = Note.parse(GO_NOTE)
    assert note.text == GO_TEXT
    verify_note(note, Verifier.from_vkey(GO_VKEY))


@pytest.mark.parametrize("vkey", PUBLISHED_VKEYS)
def test_published_verifier_keys_parse_and_write_back(vkey: str) -> None:
    assert Verifier.from_vkey(vkey).vkey() == vkey


@pytest.mark.parametrize(
    "vkey",
    [
        GO_VKEY.replace("c74f20a3", "c74f20a4"),  # an id that is not the key's
        GO_VKEY.replace("c74f20a3", "C74F20A3"),
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        GO_VKEY + "!",
        "a+00000000+Ag==",
    ],
    ids=["wrong-id", "upper-case-id", "no-key", "space-in-name", "bad-base64", "short"],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(NoteError):
        Verifier.from_vkey(vkey)


def test_a_checkpoint_round_trips_and_opens_only_under_its_log_key() -> None:
    log = log_signer()
    checkpoint = Checkpoint(ORIGIN, 20852163, hashlib.sha256(b"root").digest(), ("ext one",))
    note = Note.parse(sign_checkpoint(checkpoint, log).encode())
    assert open_checkpoint(note, log.verifier) == checkpoint
    with pytest.raises(NoteError, match="not signed"):
        open_checkpoint(note, Signer(ORIGIN, ED25519, Ed25519PrivateKey.generate()).verifier)
    assert (
        note.text == f"{ORIGIN}\n20852163\n{base64.b64encode(checkpoint.root).decode()}\next one\n"
    )


def test_unknown_keys_lines_are_ignored_but_a_bad_line_of_the_log_key_rejects() -> None:
    log = log_signer()
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, bytes(32)), log)
    stranger = NoteSignature("someone.else/log", b"\x00\x01\x02\x03", bytes(64))
    assert open_checkpoint(note.with_signature(stranger), log.verifier).size == 3
    forged = NoteSignature(ORIGIN, log.verifier.key_id, bytes(64))
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(note.with_signature(forged), log.verifier)


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n3\n{base64.b64encode(bytes(32)).decode()}",  # no final newline
        f"{ORIGIN}\n03\n{base64.b64encode(bytes(32)).decode()}\n",  # leading zero
        f"{ORIGIN}\n-3\n{base64.b64encode(bytes(32)).decode()}\n",
        f"{ORIGIN}\n3\n{base64.b64encode(bytes(31)).decode()}\n",  # a short root
        f"\n3\n{base64.b64encode(bytes(32)).decode()}\n",  # no origin
        f"{ORIGIN}\n{1 << 64}\n{base64.b64encode(bytes(32)).decode()}\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    "data",
    [
        GO_NOTE.replace(b"\xe2\x80\x94", b"--"),
        GO_NOTE.replace(b"\n\n", b"\n"),
        GO_NOTE.replace(b"problem,", b"problem,\x07"),
        GO_NOTE + b"\xff",
        GO_TEXT.encode() + b"\n",  # no signature
        GO_TEXT.encode() + b"\n" + b"".join([GO_NOTE.split(b"\n\n")[1]] * 101),
    ],
    ids=["no-em-dash", "no-blank-line", "control-char", "not-utf8", "unsigned", "101-signatures"],
)
def test_malformed_notes_are_refused(data: bytes) -> None:
    with pytest.raises(NoteError):
        Note.parse(data)


def test_a_witness_cosignature_verifies_and_says_when() -> None:
    log, witness = log_signer(), witness_signer()
    note = sign_checkpoint(Checkpoint(ORIGIN, 10, hashlib.sha256(b"r").digest()), log)
    cosigned = Note.parse(note.with_signature(cosign(note, witness, 1_679_315_147)).encode())
    assert open_checkpoint(cosigned, log.verifier).size == 10
    assert cosignature_time(cosigned, witness.verifier) == 1_679_315_147
    # The cosignature signs the checkpoint text: moved onto another checkpoint it fails.
    other = sign_checkpoint(Checkpoint(ORIGIN, 11, hashlib.sha256(b"r").digest()), log)
    moved = other.with_signature(cosigned.signatures[1])
    with pytest.raises(NoteError):
        cosignature_time(moved, witness.verifier)
    # And its timestamp is signed with it.
    sig = cosigned.signatures[1]
    later = NoteSignature(
        sig.name, sig.key_id, (1_679_315_148).to_bytes(8, "big") + sig.signature[8:]
    )
    with pytest.raises(NoteError):
        cosignature_time(note.with_signature(later), witness.verifier)
    with pytest.raises(NoteError, match="no valid cosignature"):
        cosignature_time(note, witness.verifier)


def test_key_types_are_not_interchangeable() -> None:
    log, witness = log_signer(), witness_signer(ORIGIN)
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, bytes(32)), log)
    with pytest.raises(NoteError):
        cosign(note, log, 1)  # a note key does not cosign
    with pytest.raises(NoteError):
        sign_note("text\n", witness)  # a cosigner does not sign notes
    with pytest.raises(NoteError):
        open_checkpoint(note, witness.verifier)
    # Same name, same key bytes, other type: another key id, so the log's line is not its.
    same_key = Signer(ORIGIN, COSIGNATURE_V1, log.private_key)
    assert same_key.verifier.key_id != log.verifier.key_id


@given(
    st.integers(min_value=0, max_value=(1 << 64) - 1),
    st.binary(min_size=32, max_size=32),
    st.data(),
)
def test_any_change_to_a_signed_checkpoint_is_refused(
    size: int, root: bytes, data: st.DataObject
) -> None:
    log = _LOG
    note = sign_checkpoint(Checkpoint(ORIGIN, size, root), log)
    where = data.draw(st.sampled_from(["text", "signature"]))
    if where == "text":
        text = note.text.encode()
        at = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
        changed = text[:at] + bytes([text[at] ^ data.draw(st.integers(1, 127))]) + text[at + 1 :]
        try:
            tampered = Note(changed.decode(), note.signatures)
        except UnicodeDecodeError:
            return
    else:
        sig = note.signatures[0]
        at = data.draw(st.integers(min_value=0, max_value=63))
        flipped = bytearray(sig.signature)
        flipped[at] ^= 1 << data.draw(st.integers(0, 7))
        tampered = Note(note.text, (NoteSignature(sig.name, sig.key_id, bytes(flipped)),))
    with pytest.raises(NoteError):
        open_checkpoint(tampered, log.verifier)


_LOG = log_signer()
