"""A signer's public key out of its JWK Set (crypto/jwks.py), by `kid` or by RFC 7638 thumbprint.

The thumbprint follows RFC 7638 section 3: the key's required members only, in lexicographic
order, no whitespace, SHA-256, base64url without padding. The RFC's own example (an RSA key)
checks the computation written here and the library's that the module uses."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, RSAKey
from support import vectors
from support.vectors import Case

from credit_gateway.crypto.jwks import ec_keys

REQUIRED = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


def thumbprint(jwk: dict[str, Any]) -> str:
    members = {name: jwk[name] for name in REQUIRED[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def public_jwk(curve: str = "P-256", **extra: str) -> dict[str, Any]:
    return {**ECKey.generate_key(curve).as_dict(private=False), **extra}


def numbers(key: ec.EllipticCurvePublicKey) -> tuple[int, int]:
    n = key.public_numbers()
    return n.x, n.y


@vectors.parametrize("rfc7638")
def test_the_rfc_thumbprint_example(case: Case) -> None:
    assert tuple(sorted(REQUIRED[case["jwk"]["kty"]])) == tuple(case["required_members"])
    assert thumbprint(case["jwk"]) == case["thumbprint"]
    assert RSAKey.import_key(case["jwk"]).thumbprint() == case["thumbprint"]


def test_an_ec_key_is_found_by_its_kid_and_by_its_thumbprint() -> None:
    jwk = public_jwk(kid="provider-key-1", use="sig")
    found = ec_keys({"keys": [jwk]})
    assert set(found) == {"provider-key-1", thumbprint(jwk)}
    assert numbers(found["provider-key-1"]) == numbers(found[thumbprint(jwk)])
    assert isinstance(found[thumbprint(jwk)].curve, ec.SECP256R1)


def test_a_key_without_a_kid_is_found_by_its_thumbprint_only() -> None:
    jwk = public_jwk()
    assert set(ec_keys({"keys": [jwk]})) == {thumbprint(jwk)}
    assert set(ec_keys({"keys": [{**jwk, "kid": ""}]})) == {thumbprint(jwk)}


def test_keys_of_a_set_do_not_shadow_each_other() -> None:
    one, two = public_jwk(kid="one"), public_jwk(kid="two")
    found = ec_keys({"keys": [one, two]})
    assert set(found) == {"one", "two", thumbprint(one), thumbprint(two)}
    assert numbers(found["one"]) != numbers(found["two"])


@pytest.mark.parametrize(
    "jwks",
    [{}, {"keys": []}, {"keys": ["junk", 5]}, {"keys": [public_jwk("P-384", kid="p384")]}],
    ids=["no-keys-member", "empty", "not-objects", "p-384"],
)
def test_what_is_not_a_p256_key_is_passed_over(jwks: dict[str, Any]) -> None:
    assert ec_keys(jwks) == {}


@pytest.mark.parametrize(
    "other",
    [
        RSAKey.generate_key(2048).as_dict(private=False),
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "oct", "k": "c2VjcmV0"},
    ],
    ids=["rsa", "okp", "oct"],
)
def test_keys_of_other_types_are_passed_over(other: dict[str, Any]) -> None:
    jwk = public_jwk(kid="ec")
    assert set(ec_keys({"keys": [other, jwk]})) == {"ec", thumbprint(jwk)}
