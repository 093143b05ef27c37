"""AES-256-GCM envelopes (crypto/envelope.py): what is sealed opens to the same bytes, in its own
place only, under its own data key and master key; anything else is refused as our failure."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_gateway.crypto.envelope import NONCE_BYTES, Envelope
from credit_gateway.crypto.master import MasterKey
from credit_gateway.errors import InfrastructureError

MASTER = MasterKey(bytes(range(32)))
OTHER_MASTER = MasterKey(bytes(range(1, 33)))
GCM_TAG_BYTES = 16


def envelope(*key_ids: str, master: MasterKey = MASTER) -> Envelope:
    """An envelope holding new data keys `key_ids`, the last one current."""
    wrapped = [Envelope.new_data_key(master, kid) for kid in key_ids]
    return Envelope(master, {w.key_id: w.wrapped for w in wrapped}, key_ids[-1])


ENVELOPE = envelope("dek-1")


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64))
def test_what_is_sealed_opens_to_the_same_bytes(plaintext: bytes, aad: bytes) -> None:
    key_id, blob = ENVELOPE.seal(plaintext, aad)
    assert key_id == "dek-1"
    assert len(blob) == NONCE_BYTES + len(plaintext) + GCM_TAG_BYTES
    assert ENVELOPE.open(key_id, blob, aad) == plaintext


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=256), data=st.data())
def test_any_flipped_bit_is_refused(plaintext: bytes, data: st.DataObject) -> None:
    key_id, blob = ENVELOPE.seal(plaintext, b"record:r-1")
    position = data.draw(st.integers(0, len(blob) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    tampered = bytearray(blob)
    tampered[position] ^= 1 << bit
    with pytest.raises(InfrastructureError, match="does not open"):
        ENVELOPE.open(key_id, bytes(tampered), b"record:r-1")


def test_a_ciphertext_moved_to_another_place_is_refused() -> None:
    key_id, blob = ENVELOPE.seal(b"payload", b"record:r-1")
    with pytest.raises(InfrastructureError, match="does not open"):
        ENVELOPE.open(key_id, blob, b"record:r-2")


# Shorter than a nonce, it once reached AESGCM as a short nonce and left as its ValueError.
@pytest.mark.parametrize("kept", [0, 7, NONCE_BYTES, NONCE_BYTES + GCM_TAG_BYTES - 1, -1])
def test_a_truncated_ciphertext_is_refused(kept: int) -> None:
    key_id, blob = ENVELOPE.seal(b"payload", b"aad")
    with pytest.raises(InfrastructureError, match="does not open"):
        ENVELOPE.open(key_id, blob[:kept], b"aad")


def test_each_seal_takes_a_fresh_nonce() -> None:
    blobs = {ENVELOPE.seal(b"same", b"aad")[1] for _ in range(20)}
    assert len(blobs) == 20
    assert len({blob[:NONCE_BYTES] for blob in blobs}) == 20


def test_an_unknown_data_key_is_refused() -> None:
    _, blob = ENVELOPE.seal(b"payload", b"aad")
    with pytest.raises(InfrastructureError, match="unknown data key 'dek-9'"):
        ENVELOPE.open("dek-9", blob, b"aad")


def test_after_rotation_new_data_is_sealed_under_the_new_key_and_old_data_still_opens() -> None:
    first = MasterKey(bytes(32))
    old = Envelope.new_data_key(first, "dek-1")
    before = Envelope(first, {old.key_id: old.wrapped}, "dek-1")
    old_blob = before.seal(b"old", b"aad")
    new = Envelope.new_data_key(first, "dek-2")
    after = Envelope(first, {old.key_id: old.wrapped, new.key_id: new.wrapped}, "dek-2")
    key_id, new_blob = after.seal(b"new", b"aad")
    assert key_id == "dek-2"
    assert after.open(*old_blob, b"aad") == b"old"
    assert after.open(key_id, new_blob, b"aad") == b"new"
    # A blob names its data key: opened under the other one, it is refused.
    with pytest.raises(InfrastructureError, match="does not open"):
        after.open("dek-1", new_blob, b"aad")


@pytest.mark.parametrize(
    ("wrapped_by", "filed_as", "current", "message"),
    [
        (OTHER_MASTER, "dek-1", "dek-1", "data key 'dek-1' does not open"),
        # The key id is the wrapping's associated data: a row relabelled in the database fails.
        (MASTER, "dek-2", "dek-2", "data key 'dek-2' does not open"),
        (MASTER, "dek-1", "dek-2", "current data key 'dek-2' is not loaded"),
    ],
    ids=["another-master-key", "filed-under-another-id", "current-not-loaded"],
)
def test_data_keys_that_cannot_serve_are_refused_as_they_load(
    wrapped_by: MasterKey, filed_as: str, current: str, message: str
) -> None:
    wrapped = Envelope.new_data_key(wrapped_by, "dek-1")
    with pytest.raises(InfrastructureError, match=message):
        Envelope(MASTER, {filed_as: wrapped.wrapped}, current)


def test_two_envelopes_over_the_same_wrapped_keys_open_each_others_data() -> None:
    # Replicas load the same wrapped keys from the database with the same master key file.
    wrapped = Envelope.new_data_key(MASTER, "dek-1")
    one, two = (Envelope(MASTER, {"dek-1": wrapped.wrapped}, "dek-1") for _ in range(2))
    assert two.open(*one.seal(b"shared", b"aad"), b"aad") == b"shared"
