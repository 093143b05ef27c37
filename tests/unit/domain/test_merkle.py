"""The Merkle tree of the audit log: RFC 9162 roots and proofs, against the independent vectors
(transparency-dev/merkle, ../shared/vectors/merkle) and a recursive reference of the RFC's text."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import vectors

from credit_gateway.domain.audit import leaf_hash
from credit_gateway.domain.merkle import (
    EMPTY_ROOT,
    LeafHashes,
    ProofError,
    appended_nodes,
    consistency_proof,
    hash_children,
    inclusion_proof,
    root,
    split_point,
    verify_consistency,
    verify_inclusion,
)


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


@vectors.parametrize("merkle", from_shared=True)
def test_shared_vectors(case: dict[str, Any]) -> None:
    proof = [_b64(p) for p in case["proof"] or []]
    if case["id"].startswith("inclusion/"):

        def check() -> None:
            verify_inclusion(
                _b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, _b64(case["root"])
            )
    else:

        def check() -> None:
            verify_consistency(
                case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof
            )

    if case["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


# --- a reference: RFC 9162 section 2.1 as written, recursively over the leaf hashes ----------


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return hash_children(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = split_point(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    if m == len(leaves):
        return [] if whole else [mth(leaves)]
    k = split_point(len(leaves))
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def tree(size: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]


sizes = st.integers(min_value=1, max_value=300)


@given(sizes)
def test_root_is_the_rfc_mth(size: int) -> None:
    leaves = tree(size)
    assert root(LeafHashes(leaves), size) == mth(leaves)
    assert root(LeafHashes([]), 0) == EMPTY_ROOT


@given(sizes, st.data())
def test_inclusion_proofs_are_the_rfc_path_and_verify(size: int, data: st.DataObject) -> None:
    leaves = tree(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(LeafHashes(leaves), index, size)
    assert proof == path(index, leaves)
    verify_inclusion(leaves[index], index, size, proof, mth(leaves))


@given(sizes, st.data())
def test_consistency_proofs_are_the_rfc_proof_and_verify(size: int, data: st.DataObject) -> None:
    leaves = tree(size)
    old = data.draw(st.integers(min_value=1, max_value=size))
    proof = consistency_proof(LeafHashes(leaves), old, size)
    assert proof == subproof(old, leaves, True)
    verify_consistency(old, size, mth(leaves[:old]), mth(leaves), proof)


def _flip(value: bytes, bit: int) -> bytes:
    flipped = bytearray(value)
    flipped[bit // 8 % len(value)] ^= 1 << (bit % 8)
    return bytes(flipped)


@given(st.integers(min_value=2, max_value=200), st.data())
def test_any_flipped_bit_or_wrong_position_fails_inclusion(size: int, data: st.DataObject) -> None:
    leaves = tree(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(LeafHashes(leaves), index, size)
    good_root = mth(leaves)
    bit = data.draw(st.integers(min_value=0, max_value=255))
    where = data.draw(st.sampled_from(["leaf", "root", "proof", "index", "drop", "add"]))
    leaf, bad_root, bad_proof, bad_index = leaves[index], good_root, list(proof), index
    if where == "leaf":
        leaf = _flip(leaf, bit)
    elif where == "root":
        bad_root = _flip(good_root, bit)
    elif where == "proof":
        at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bad_proof[at] = _flip(proof[at], bit)
    elif where == "index":
        bad_index = data.draw(
            st.integers(min_value=0, max_value=2 * size).filter(lambda i: i != index)
        )
    elif where == "drop":
        bad_proof = bad_proof[:-1]
    else:
        bad_proof = [*bad_proof, good_root]
    with pytest.raises(ProofError):
        verify_inclusion(leaf, bad_index, size, bad_proof, bad_root)


@given(st.integers(min_value=2, max_value=200), st.data())
def test_any_flipped_bit_fails_consistency(size: int, data: st.DataObject) -> None:
    leaves = tree(size)
    old = data.draw(st.integers(min_value=1, max_value=size - 1))
    proof = consistency_proof(LeafHashes(leaves), old, size)
    roots = [mth(leaves[:old]), mth(leaves)]
    bit = data.draw(st.integers(min_value=0, max_value=255))
    where = data.draw(st.sampled_from(["old", "new", "proof", "drop", "add"]))
    if where in ("old", "new"):
        i = 0 if where == "old" else 1
        roots[i] = _flip(roots[i], bit)
    elif where == "proof":
        at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        proof[at] = _flip(proof[at], bit)
    elif where == "drop":
        proof = proof[:-1]
    else:
        proof = [*proof, roots[1]]
    with pytest.raises(ProofError):
        verify_consistency(old, size, roots[0], roots[1], proof)


def test_proofs_outside_the_tree_are_refused() -> None:
    nodes = LeafHashes(tree(5))
    for index, size in ((5, 5), (-1, 5), (0, 0)):
        with pytest.raises(ProofError):
            inclusion_proof(nodes, index, size)
    with pytest.raises(ProofError):
        consistency_proof(nodes, 6, 5)
    assert consistency_proof(nodes, 5, 5) == []


def test_a_root_means_nothing_without_its_size() -> None:
    # RFC 9162: leaf 0's path has one shape in trees of 129 and 130 leaves, so the proof checks
    # out against either size; a size that changes the depth does not. This is why a checkpoint
    # signs the size with the root, and proofs are asked for at a checkpoint's size.
    leaves = tree(129)
    proof = inclusion_proof(LeafHashes(leaves), 0, 129)
    verify_inclusion(leaves[0], 0, 130, proof, mth(leaves))
    for size in (128, 257):
        with pytest.raises(ProofError):
            verify_inclusion(leaves[0], 0, size, proof, mth(leaves))


class _CountingNodes:
    def __init__(self) -> None:
        self.reads = 0

    def node(self, level: int, index: int) -> bytes:
        self.reads += 1
        return bytes(32)


@given(st.integers(min_value=2, max_value=1 << 40), st.data())
def test_a_proof_costs_at_most_two_stored_nodes_per_level(size: int, data: st.DataObject) -> None:
    bound = 2 * (size - 1).bit_length()
    nodes = _CountingNodes()
    inclusion_proof(nodes, data.draw(st.integers(min_value=0, max_value=size - 1)), size)
    assert nodes.reads <= bound
    nodes = _CountingNodes()
    consistency_proof(nodes, data.draw(st.integers(min_value=1, max_value=size)), size)
    assert nodes.reads <= bound


class _StoredNodes:
    """A store of (level, index) -> hash, counting reads."""

    def __init__(self) -> None:
        self.hashes: dict[tuple[int, int], bytes] = {}
        self.reads = 0

    def node(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.hashes[(level, index)]


@given(st.lists(st.integers(min_value=0, max_value=70), min_size=1, max_size=8))
def test_appending_in_batches_stores_every_complete_subtree(batches: list[int]) -> None:
    store, size = _StoredNodes(), 0
    leaves = tree(sum(batches))
    for count in batches:
        store.reads = 0
        made = appended_nodes(store, size, leaves[size : size + count])
        assert store.reads <= size.bit_length()  # only the right edge of the stored tree
        for level, index, value in made:
            assert (level, index) not in store.hashes  # nodes are written once, never changed
            store.hashes[(level, index)] = value
        size += count
        reference = LeafHashes(leaves[:size])
        assert root(store, size) == root(reference, size) == mth(leaves[:size])
    expected = {
        (level, index) for level in range(size.bit_length()) for index in range(size >> level)
    }
    assert set(store.hashes) == expected
