"""The master secret (crypto/master.py): keys derived by HKDF-SHA256 as RFC 5869 defines it, one
per label, the same on every replica and in every release (data at rest depends on them)."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import vectors
from support.vectors import Case

from credit_gateway.crypto.master import MASTER_KEY_BYTES, MasterKey, SubjectLookup
from credit_gateway.errors import ConfigError

SECRET = bytes(range(32))
LABEL_PREFIX = b"credit_gateway/"  # the info of every derivation: changing it loses data at rest


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 section 2, written out: an implementation apart from the one under test."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()  # 2.2: no salt, zeros
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):  # 2.3: T(1) .. T(N)
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


@vectors.parametrize("rfc5869")
def test_the_reference_hkdf_passes_the_rfc_vectors(case: Case) -> None:
    ikm, salt, info = (bytes.fromhex(case[k]) for k in ("ikm", "salt", "info"))
    assert hkdf_sha256(ikm, salt, info, case["length"]).hex() == case["okm"]


@given(
    secret=st.binary(min_size=32, max_size=32),
    label=st.text(max_size=40),
    length=st.integers(1, 255 * 32),
)
def test_derive_is_rfc_5869_hkdf_sha256_without_salt_over_the_prefixed_label(
    secret: bytes, label: str, length: int
) -> None:
    derived = MasterKey(secret).derive(label, length)
    assert derived == hkdf_sha256(secret, b"", LABEL_PREFIX + label.encode(), length)


def test_derive_is_deterministic_and_32_bytes_by_default() -> None:
    assert MasterKey(SECRET).derive("data-key-wrapping") == MasterKey(SECRET).derive(
        "data-key-wrapping"
    )
    assert len(MasterKey(SECRET).derive("x")) == 32


def test_labels_and_secrets_keep_keys_apart() -> None:
    labels = ["data-key-wrapping", "subject-lookup", "signing-keys", "", "data-key-wrapping "]
    keys = {MasterKey(SECRET).derive(label) for label in labels}
    assert len(keys) == len(labels)
    assert MasterKey(SECRET).derive("x") != MasterKey(bytes(32)).derive("x")
    assert SECRET not in keys


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_the_secret_is_exactly_32_bytes(size: int) -> None:
    with pytest.raises(ConfigError, match="master key must be 32 bytes"):
        MasterKey(bytes(size))


def test_repr_never_shows_the_secret() -> None:
    assert repr(MasterKey(SECRET)) == "MasterKey(<secret>)"
    assert SECRET.hex() not in repr(MasterKey(SECRET))


def test_subject_lookup_is_a_keyed_hash_under_its_own_derived_key() -> None:
    lookup = SubjectLookup(MasterKey(SECRET))
    code = "11010519491231002X"
    key = MasterKey(SECRET).derive("subject-lookup")
    assert lookup(code) == hmac.new(key, code.encode(), hashlib.sha256).hexdigest()
    assert lookup(code) == SubjectLookup(MasterKey(SECRET))(code)  # equal codes meet
    assert lookup(code) != SubjectLookup(MasterKey(bytes(32)))(code)
    assert lookup(code) != hashlib.sha256(code.encode()).hexdigest()  # not guessable unkeyed


# --- the key file ------------------------------------------------------------------------------


def test_create_writes_a_0600_file_that_load_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "home" / "master.key"
    created = MasterKey.create(path)
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) == 2 * MASTER_KEY_BYTES
    assert MasterKey.load(path).derive("x") == created.derive("x")


def test_create_never_overwrites_a_key(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text(SECRET.hex() + "\n")
    with pytest.raises(FileExistsError):
        MasterKey.create(path)
    assert MasterKey.load(path).derive("x") == MasterKey(SECRET).derive("x")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not hex at all", "is not 64 hex digits"),
        (SECRET.hex()[:-2], "master key must be 32 bytes"),
        (SECRET.hex() + "00", "master key must be 32 bytes"),
    ],
    ids=["not-hex", "31-bytes", "33-bytes"],
)
def test_load_refuses_a_malformed_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "master.key"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        MasterKey.load(path)


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read master key .*missing\.key"):
        MasterKey.load(tmp_path / "missing.key")
