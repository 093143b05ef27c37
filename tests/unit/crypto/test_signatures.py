"""Detached ES256 signatures (crypto/signatures.py): the JWS form, raw R || S (RFC 7518 section
3.4), and nothing else; every refusal a PeerError with reason BAD_SIGNATURE."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from support import vectors
from support.vectors import Case

from credit_gateway.crypto.signatures import sign_es256, verify_es256
from credit_gateway.errors import PeerError

KEY = ec.generate_private_key(ec.SECP256R1())
DATA = b'{"record":"r-1"}'


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def refused(key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> str:
    with pytest.raises(PeerError) as caught:
        verify_es256(key, data, signature, what="record r-1")
    assert caught.value.reason == "BAD_SIGNATURE"
    assert caught.value.message.startswith("record r-1: ")
    return caught.value.message


def der(signature: bytes) -> bytes:
    return encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )


@vectors.parametrize("rfc7515")
def test_the_rfc_example_signature_verifies(case: Case) -> None:
    jwk = case["jwk"]
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url(jwk["x"]), "big"),
        int.from_bytes(b64url(jwk["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()
    data, signature = case["signing_input"].encode(), b64url(case["signature"])
    verify_es256(public, data, signature, what="RFC example")
    assert "does not verify" in refused(public, data + b".", signature)
    assert "not ES256" in refused(public, data, der(signature))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=512))
def test_a_signature_is_64_bytes_and_verifies_over_its_data(data: bytes) -> None:
    signature = sign_es256(KEY, data)
    assert len(signature) == 64
    verify_es256(KEY.public_key(), data, signature, what="record r-1")


def test_the_der_form_of_a_valid_signature_is_refused() -> None:
    signature = sign_es256(KEY, DATA)
    KEY.public_key().verify(der(signature), DATA, ec.ECDSA(hashes.SHA256()))  # it is valid DER
    assert "not ES256" in refused(KEY.public_key(), DATA, der(signature))


@pytest.mark.parametrize("length", [0, 63, 65, 96, 132])
def test_a_signature_of_another_length_is_refused(length: int) -> None:
    assert "not ES256" in refused(KEY.public_key(), DATA, b"\x01" * length)


def test_other_data_another_key_or_a_flipped_bit_is_refused() -> None:
    signature = sign_es256(KEY, DATA)
    assert "does not verify" in refused(KEY.public_key(), DATA + b" ", signature)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert "does not verify" in refused(other, DATA, signature)
    flipped = bytes([signature[0] ^ 0x80]) + signature[1:]
    assert "does not verify" in refused(KEY.public_key(), DATA, flipped)


@pytest.mark.parametrize("value", [b"\x00" * 64, b"\xff" * 64], ids=["zero", "all-ones"])
def test_out_of_range_r_and_s_are_refused_not_raised_as_a_bug(value: bytes) -> None:
    assert "does not verify" in refused(KEY.public_key(), DATA, value)


def test_a_key_on_another_curve_is_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    assert "not ES256" in refused(p384, DATA, sign_es256(KEY, DATA))
