"""GatewayError -> gRPC status (adapters/grpc/errors.py): each branch of the tree has its code,
every status carries ErrorInfo(reason, domain), malformed input names its fields in BadRequest,
and nothing of ours (a driver's words, an internal message) reaches the caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from hypothesis import given
from hypothesis import strategies as st

# Imported for the classes they define, so the walk below meets every GatewayError there is.
from credit_gateway import errors
from credit_gateway.adapters.grpc import errors as edge
from credit_gateway.consent.tokens import ConsentTokenError
from credit_gateway.devpki import pki  # noqa: F401
from credit_gateway.domain import canonical, catalog  # noqa: F401
from credit_gateway.domain.identifiers import IdentifierError
from credit_gateway.domain.witness import WitnessRefusal
from credit_gateway.errors import FieldViolation, GatewayError, InvalidArgument, StorageError

C = grpc.StatusCode
# The code of each branch; a class below one maps as its branch does. Anything else is ours and
# unexplained: INTERNAL.
BRANCHES: dict[type[GatewayError], grpc.StatusCode] = {
    errors.InvalidArgument: C.INVALID_ARGUMENT,
    errors.Unauthenticated: C.UNAUTHENTICATED,
    errors.PermissionDenied: C.PERMISSION_DENIED,
    errors.NotFound: C.NOT_FOUND,
    errors.AlreadyExists: C.ALREADY_EXISTS,
    errors.FailedPrecondition: C.FAILED_PRECONDITION,
    errors.ResourceExhausted: C.RESOURCE_EXHAUSTED,
    errors.DeadlineExceeded: C.DEADLINE_EXCEEDED,
    errors.StorageError: C.UNAVAILABLE,  # retry later (with the same idempotency key)
    errors.PeerError: C.INVALID_ARGUMENT,  # the caller handed us someone's bad artefact
}
# Classes whose constructor is not (message).
MAKE: dict[type[GatewayError], Callable[[str], GatewayError]] = {
    IdentifierError: lambda message: IdentifierError("check_character", message),
    ConsentTokenError: lambda message: ConsentTokenError(message),
    WitnessRefusal: lambda message: WitnessRefusal(400, "WITNESS_BAD_REQUEST", message),
}


def every_error(cls: type[GatewayError] = GatewayError) -> list[type[GatewayError]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in every_error(direct))]


def expected_code(cls: type[GatewayError]) -> grpc.StatusCode:
    return next((BRANCHES[base] for base in cls.__mro__ if base in BRANCHES), C.INTERNAL)


def make(cls: type[GatewayError], message: str = "the refusal") -> GatewayError:
    return MAKE.get(cls, cls)(message)


def read(status: grpc.Status) -> tuple[status_pb2.Status, list[Any]]:
    """The google.rpc.Status a client finds in the trailers, and its unpacked details."""
    (raw,) = [v for k, v in status.trailing_metadata if k == "grpc-status-details-bin"]
    rich = status_pb2.Status.FromString(raw)
    details: list[Any] = []
    for packed in rich.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            detail = kind()
            if packed.Unpack(detail):
                details.append(detail)
    assert len(details) == len(rich.details), rich
    return rich, details


@pytest.mark.parametrize("cls", every_error(), ids=lambda cls: cls.__name__)
def test_every_error_class_has_the_code_of_its_branch(cls: type[GatewayError]) -> None:
    error = make(cls)
    status = edge.to_status(error)
    rich, details = read(status)
    assert status.code == expected_code(cls)
    assert rich.code == status.code.value[0]
    assert isinstance(details[0], error_details_pb2.ErrorInfo)
    assert details[0].domain == edge.DOMAIN == "credit-gateway"
    if status.code is C.UNAVAILABLE:
        assert details[0].reason == "STORAGE_UNAVAILABLE"
    else:
        assert details[0].reason == error.reason
    if status.code is C.INTERNAL:
        assert status.details == rich.message == "internal error"


def test_the_tree_has_every_branch_the_table_names() -> None:
    # A branch renamed or moved in errors.py fails here, not silently as INTERNAL at the edge.
    assert set(BRANCHES) <= set(every_error())
    assert {cls.__name__ for cls in every_error() if expected_code(cls) is C.INTERNAL} >= {
        "GatewayError",
        "InfrastructureError",
        "ConfigError",
    }


def test_a_callers_refusal_says_its_message() -> None:
    status = edge.to_status(errors.NotFound("consent cns_9 not found", reason="CONSENT_NOT_FOUND"))
    rich, (info,) = read(status)
    assert (status.code, status.details, rich.message) == (
        C.NOT_FOUND,
        "consent cns_9 not found",
        "consent cns_9 not found",
    )
    assert info.reason == "CONSENT_NOT_FOUND"


def test_field_violations_go_out_as_bad_request_in_their_order() -> None:
    error = InvalidArgument(
        "consent terms are malformed",
        reason="CONSENT_TERMS_INVALID",
        violations=(
            FieldViolation("terms.valid_until", "required"),
            FieldViolation("terms.grantee", "required"),
        ),
    )
    _, (info, bad) = read(edge.to_status(error))
    assert info.reason == "CONSENT_TERMS_INVALID"
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("terms.valid_until", "required"),
        ("terms.grantee", "required"),
    ]


@pytest.mark.parametrize(
    "error",
    [InvalidArgument("bad"), errors.PeerError("record r-1: bad signature"), errors.NotFound("x")],
    ids=["invalid-without-violations", "peer", "not-found"],
)
def test_no_bad_request_without_field_violations(error: GatewayError) -> None:
    _, details = read(edge.to_status(error))
    assert [type(d) for d in details] == [error_details_pb2.ErrorInfo]


STORAGE_FAILURES = [
    StorageError(
        '(psycopg.OperationalError) connection to server at "10.0.0.5", port 5432 failed: '
        'FATAL: password authentication failed for user "cg_app"',
    ),
    StorageError("(1213, 'Deadlock found when trying to get lock')", transient=True),
    StorageError("UNIQUE constraint failed: records.id", reason="STORAGE_CONFLICT"),
]


@pytest.mark.parametrize("error", STORAGE_FAILURES, ids=["connection", "deadlock", "reasoned"])
def test_storage_failures_say_retry_later_and_nothing_of_the_driver(error: StorageError) -> None:
    status = edge.to_status(error)
    _, (info,) = read(status)
    assert (status.code, status.details) == (C.UNAVAILABLE, "storage is unavailable; retry later")
    assert info.reason == "STORAGE_UNAVAILABLE"
    wire = b"".join([status.details.encode(), *(v for _, v in status.trailing_metadata)])
    for word in (
        "psycopg",
        "10.0.0.5",
        "password",
        "cg_app",
        "Deadlock",
        "UNIQUE",
        "records",
        "CONFLICT",
    ):
        assert word.encode() not in wire


def test_an_internal_error_says_nothing_of_itself() -> None:
    status = edge.to_status(GatewayError("KeyError: '/var/lib/gateway/master.key' in keys.py"))
    assert (status.code, status.details) == (C.INTERNAL, "internal error")
    assert b"master.key" not in b"".join(v for _, v in status.trailing_metadata)
    internal = edge.internal_status()
    assert (internal.code, internal.details) == (C.INTERNAL, "internal error")
    assert read(internal)[1][0].reason == "INTERNAL"


@given(
    cls=st.sampled_from(every_error()),
    message=st.text(min_size=1, max_size=200),
    reason=st.from_regex(r"[A-Z][A-Z0-9_]{0,30}", fullmatch=True),
)
def test_any_error_maps_and_shows_its_message_only_if_it_is_the_callers(
    cls: type[GatewayError], message: str, reason: str
) -> None:
    error = make(cls, message)
    error.reason = reason
    status = edge.to_status(error)
    info = read(status)[1][0]
    if status.code is C.UNAVAILABLE:
        assert (status.details, info.reason) == (
            "storage is unavailable; retry later",
            "STORAGE_UNAVAILABLE",
        )
    elif status.code is C.INTERNAL:
        assert (status.details, info.reason) == ("internal error", reason)
    else:
        assert (status.details, info.reason) == (message, reason)
