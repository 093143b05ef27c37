"""A WatchConsents stream kept by a grantee that has lost its standing.

Fixed in c2cfc87: a watch authorized once ran for ever, so a suspended agency (or one whose
token was revoked or expired, or whose licence lapsed) kept receiving consent events. The
stream now re-runs the interceptor's standing checks every 2 s and ends with their status.
(Moved here from tests/integration/test_watch.py, where it came with the fix.)
"""

from __future__ import annotations

import time

import grpc
from support.harness import Harness, make_agreement
from support.rpc import status_of
from support.watch import follow_watch

from credit_gateway.services import operator as registry


def test_a_suspended_grantee_loses_its_open_watch(harness: Harness) -> None:
    agency = harness.add_participant("zx-credit", "credit-agency")
    make_agreement(harness, agency, categories=("administrative_permit",))
    thread, ended = follow_watch(harness.token(agency), agency.channel)
    time.sleep(0.5)  # the stream is open and polling
    registry.suspend_participant(harness.settings, "zx-credit")
    thread.join(timeout=10)  # re-checked every 2 s
    assert not thread.is_alive()
    assert status_of(ended[0]) == (grpc.StatusCode.PERMISSION_DENIED, "PARTICIPANT_SUSPENDED")
