"""Gateway errors -> gRPC status with google.rpc details, in one table."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from credit_gateway.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    NotFound,
    PeerError,
    PermissionDenied,
    ResourceExhausted,
    StorageError,
    Unauthenticated,
)

DOMAIN = "credit-gateway"

_CODES: tuple[tuple[type[GatewayError], int], ...] = (
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (Unauthenticated, code_pb2.UNAUTHENTICATED),
    (PermissionDenied, code_pb2.PERMISSION_DENIED),
    (NotFound, code_pb2.NOT_FOUND),
    (AlreadyExists, code_pb2.ALREADY_EXISTS),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (ResourceExhausted, code_pb2.RESOURCE_EXHAUSTED),
    (DeadlineExceeded, code_pb2.DEADLINE_EXCEEDED),
    # The database failed past its retry: a retry later may succeed (with the same
    # idempotency key, for counted calls), so not INTERNAL.
    (StorageError, code_pb2.UNAVAILABLE),
    (PeerError, code_pb2.INVALID_ARGUMENT),  # the caller handed us someone's bad artefact
)


def to_status(error: GatewayError) -> grpc.Status:
    code = next((c for cls, c in _CODES if isinstance(error, cls)), code_pb2.INTERNAL)
    reason = error.reason
    if isinstance(error, StorageError):
        # The driver's words stay in our log; the caller learns only what to do: retry later.
        message, reason = "storage is unavailable; retry later", "STORAGE_UNAVAILABLE"
    else:
        message = error.message if code != code_pb2.INTERNAL else "internal error"
    details = [error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)]
    if isinstance(error, InvalidArgument) and error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=packed))


def internal_status() -> grpc.Status:
    return to_status(GatewayError("internal error"))
