"""A consent signature from a subject that has no registered key.

Fixed in dcc024f ("unverifiable signatures"): a grant carrying a subject signature was accepted
and the signature stored unverified when the subject had no key to verify it with, so it would
later read as evidence that the subject had signed. Such a grant is now refused
(SUBJECT_KEY_NOT_REGISTERED) and nothing is stored.
"""

from __future__ import annotations

import grpc
from support.rpc import refusal
from support.scenario import Consented, count

from credit_gateway.adapters.grpc.v1 import consent_pb2
from credit_gateway.adapters.storage.tables import ConsentRow


def test_a_signature_nobody_can_verify_is_refused_and_nothing_stored(world: Consented) -> None:
    request = consent_pb2.GrantConsentRequest(terms=world.terms(), subject_signature=b"\x01" * 64)
    assert refusal(
        lambda: world.consents.GrantConsent(request, metadata=world.subject_md(), timeout=10)
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "SUBJECT_KEY_NOT_REGISTERED")
    assert count(world.h.db, ConsentRow) == 0
