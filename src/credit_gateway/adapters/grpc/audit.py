"""AuditService: the audit log's checkpoints and proofs for any caller, its entries for auditors.

A checkpoint is answered as stored, byte for byte, with every cosignature it has: a client
checks the log's signature under the vkey the center publishes and each witness's under its
own. Proofs are RFC 9162's, against a checkpoint's size. Who may call which method is the
interceptor's (auth/scopes.py); each method is one read on a database thread.
"""

from __future__ import annotations

from typing import Any

import grpc

from credit_gateway.adapters.grpc.v1 import audit_pb2, audit_pb2_grpc
from credit_gateway.adapters.storage.tlog import StoredEntry
from credit_gateway.domain.merkle import HASH_SIZE
from credit_gateway.errors import InvalidArgument, NotFound
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.services.audit import AuditLog

_Ctx = grpc.aio.ServicerContext[Any, Any]

# Sizes and indexes are stored as signed 64-bit integers: a uint64 past that names nothing the
# log holds, and no driver would bind it (SQLite raises OverflowError), so it is refused here.
_STORED_MAX = 2**63 - 1


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, audit: AuditLog, blocking: Blocking) -> None:
        self.audit = audit
        self.blocking = blocking

    async def GetCheckpoint(
        self, request: audit_pb2.GetCheckpointRequest, context: _Ctx
    ) -> audit_pb2.SignedCheckpoint:
        signed = await self.blocking.call(self.audit.checkpoint, _tree_size(request.tree_size))
        return audit_pb2.SignedCheckpoint(
            note=signed.note,
            origin=signed.origin,
            tree_size=signed.size,
            root_hash=signed.root,
            log_key=signed.log_key,
        )

    async def GetInclusionProof(
        self, request: audit_pb2.InclusionProofRequest, context: _Ctx
    ) -> audit_pb2.InclusionProof:
        which = request.WhichOneof("leaf")
        if which is None:
            raise InvalidArgument.field(
                "leaf", "give leaf_index or leaf_hash", reason="MISSING_FIELD"
            )
        index, leaf = None, None
        if which == "leaf_hash":
            if len(request.leaf_hash) != HASH_SIZE:
                raise InvalidArgument.field(
                    "leaf_hash",
                    f"{len(request.leaf_hash)} bytes, not {HASH_SIZE}",
                    reason="LEAF_HASH_INVALID",
                )
            leaf = request.leaf_hash
        else:
            index = request.leaf_index  # checked against the tree's size before any read
        proof = await self.blocking.call(
            self.audit.inclusion, index, leaf, _tree_size(request.tree_size)
        )
        return audit_pb2.InclusionProof(
            leaf_index=proof.leaf_index,
            tree_size=proof.tree_size,
            leaf_hash=proof.leaf_hash,
            hashes=proof.hashes,
        )

    async def GetConsistencyProof(
        self, request: audit_pb2.ConsistencyProofRequest, context: _Ctx
    ) -> audit_pb2.ConsistencyProof:
        # old_size is checked against the new tree's size before any read.
        new_size, hashes = await self.blocking.call(
            self.audit.consistency, request.old_size, _tree_size(request.new_size)
        )
        return audit_pb2.ConsistencyProof(
            old_size=request.old_size, new_size=new_size, hashes=hashes
        )

    async def GetEntries(
        self, request: audit_pb2.GetEntriesRequest, context: _Ctx
    ) -> audit_pb2.GetEntriesResponse:
        found = await self.blocking.call(self._entries, request.start, request.end)
        return audit_pb2.GetEntriesResponse(
            entries=[
                audit_pb2.LogEntry(
                    leaf_index=e.leaf_index,
                    leaf_hash=e.leaf_hash,
                    body=e.body or b"",
                    pruned=e.pruned,
                )
                for e in found
            ]
        )

    def _entries(self, start: int, end: int) -> list[StoredEntry]:
        """Entries [start, end), fewer where the tree ends; refused when start is past its end.
        Only an empty answer needs the tree's size, read then (its own transaction: a tree only
        grows). Empty inside the tree, rows are missing: the auditor is shown the gap."""
        # A window past _STORED_MAX is moved down to end there: the same shape (a malformed
        # range is refused as one) and still past any tree (refused as out of range below).
        over = max(0, end - _STORED_MAX)
        found = self.audit.entries(start - over, end - over)
        if not found:
            size = self.audit.checkpoint().size  # no checkpoint yet: CHECKPOINT_NOT_FOUND
            if start >= size:
                raise InvalidArgument.field(
                    "start", f"not in the tree of {size}", reason="LEAF_OUT_OF_RANGE"
                )
        return found


def _tree_size(size: int) -> int:
    """A checkpoint's size as asked (0: the latest), refused as unknown when none can have it."""
    if size > _STORED_MAX:
        raise NotFound(f"no checkpoint of size {size}", reason="CHECKPOINT_NOT_FOUND")
    return size
