"""Reading a refusal the way a client does: the status code and the google.rpc details."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def status_of(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """The status code and the machine-readable ErrorInfo reason of a refused call."""
    call = cast(grpc.Call, error)
    status = rpc_status.from_call(call)
    assert status is not None, f"no google.rpc.Status details: {call.details()}"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return call.code(), str(info.reason)
    raise AssertionError(f"no ErrorInfo in {status}")


def reason_of(error: grpc.RpcError) -> str:
    return status_of(error)[1]


def field_violations(error: grpc.RpcError) -> set[str]:
    """The fields named by the google.rpc.BadRequest detail, if any."""
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None
    fields: set[str] = set()
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields |= {v.field for v in bad.field_violations}
    return fields


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """The status code and reason of the call, which must be refused."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return status_of(caught.value)
