"""The audit log's Merkle tree (RFC 9162 section 2.1): roots, proofs and their verification.

Pure functions over leaf hashes (``audit.leaf_hash``: SHA-256(0x00 || entry)). Proofs are built
from a :class:`Nodes` source, the hashes of complete subtrees, so a store that keeps those answers
a proof with O(log n) reads (two per level at most) instead of rehashing the log. Verification
follows RFC 9162 sections 2.1.3.2 and 2.1.4.2, step by step, and refuses anything else: a proof
with an extra or a missing hash, an index or size out of range, a root of the wrong length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from credit_gateway.errors import DomainError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256()


class ProofError(DomainError):
    """A proof does not verify, or a proof was asked of a tree that cannot give it."""

    default_reason = "PROOF_INVALID"


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 9162 section 2.1.1: an interior node is SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(size: int) -> int:
    """The largest power of two smaller than ``size`` (> 1): where the tree splits."""
    return 1 << ((size - 1).bit_length() - 1)


class Nodes(Protocol):
    """The hash of the complete subtree at ``level`` whose leftmost leaf is ``index << level``
    (level 0: the leaf hashes themselves). Only subtrees inside the tree are asked for."""

    def node(self, level: int, index: int) -> bytes: ...


class LeafHashes:
    """:class:`Nodes` over leaf hashes held in memory, each level computed once when asked."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._levels: list[list[bytes]] = [list(leaves)]

    def node(self, level: int, index: int) -> bytes:
        while len(self._levels) <= level:
            below = self._levels[-1]
            self._levels.append(
                [hash_children(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )
        return self._levels[level][index]


def appended_nodes(
    nodes: Nodes, size: int, leaves: Sequence[bytes]
) -> list[tuple[int, int, bytes]]:
    """The complete-subtree nodes, as (level, index, hash), that appending ``leaves`` to a tree
    of ``size`` creates, leaves included. Of the stored tree it reads only the right edge (the
    left siblings the new leaves complete), each at most once."""
    made: dict[tuple[int, int], bytes] = {}
    out: list[tuple[int, int, bytes]] = []
    for offset, leaf in enumerate(leaves):
        level, index, value = 0, size + offset, leaf
        made[(level, index)] = value
        out.append((level, index, value))
        while index & 1:  # a right child: with its left sibling it completes the parent
            left = made.pop((level, index - 1), None)
            if left is None:
                left = nodes.node(level, index - 1)
            value, level, index = hash_children(left, value), level + 1, index >> 1
            made[(level, index)] = value
            out.append((level, index, value))
    return out


def subtree_root(nodes: Nodes, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range the tree's recursion produces (start aligned to its split)."""
    size = end - start
    if size <= 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0:  # a complete subtree: one stored node
        level = size.bit_length() - 1
        return nodes.node(level, start >> level)
    k = split_point(size)
    return hash_children(subtree_root(nodes, start, start + k), subtree_root(nodes, start + k, end))


def root(nodes: Nodes, size: int) -> bytes:
    return subtree_root(nodes, 0, size)


def inclusion_proof(nodes: Nodes, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]), RFC 9162 section 2.1.3.1, leaf side first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}", reason="PROOF_OUT_OF_RANGE")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append(subtree_root(nodes, start + k, end))
            end = start + k
        else:
            path.append(subtree_root(nodes, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(nodes: Nodes, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]), RFC 9162 section 2.1.4.1, lowest node first."""
    if not 0 <= old_size <= new_size:
        raise ProofError(
            f"no consistency proof from {old_size} to {new_size}", reason="PROOF_OUT_OF_RANGE"
        )
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []
    start, end, whole = 0, new_size, True
    while old_size != end:  # SUBPROOF's recursion, from the root down to where the old tree ends
        k = split_point(end - start)
        if old_size - start <= k:
            path.append(subtree_root(nodes, start + k, end))
            end = start + k
        else:
            path.append(subtree_root(nodes, start, start + k))
            start, whole = start + k, False
    if not whole:
        path.append(subtree_root(nodes, start, end))
    path.reverse()
    return path


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """RFC 9162 section 2.1.3.2: ``leaf`` is at ``index`` in the tree of ``size`` with that root.
    Raises ProofError when it is not."""
    for value, what in (
        (leaf, "leaf hash"),
        (expected_root, "root"),
        *((p, "proof") for p in proof),
    ):
        _check_hash(value, what)
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hash_children(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    if r != expected_root:
        raise ProofError("the proof does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2: the tree of ``new_size`` extends the tree of ``old_size``.
    Raises ProofError when it does not. From the empty tree there is nothing to prove: callers
    that accept any first tree say so themselves (as transparency-dev's verifier does)."""
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency proof from a tree of {old_size} to one of {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("trees of one size need an empty proof")
        if old_root != new_root:
            raise ProofError("two different roots for one tree size")
        return
    for value, what in (
        (old_root, "old root"),
        (new_root, "new root"),
        *((p, "proof") for p in proof),
    ):
        _check_hash(value, what)
    if not proof:
        raise ProofError("an empty proof between different sizes")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a complete subtree: its root starts the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = hash_children(c, fr), hash_children(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = hash_children(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    if fr != old_root or sr != new_root:
        raise ProofError("the proof does not lead to both roots")
