"""A retried QueryAuthorized released twice and counted two consent uses.

Fixed in c039a3a (#11 item 16): a client whose answer was lost (a dropped connection, a
deadline) could only call again, and each call was a new release, counting another consent use
and agreement call. With an `idempotency-key` the retry within 24 hours gets the recorded answer
and counts nothing (tests/integration/test_idempotency.py has the dropped connection).
"""

from __future__ import annotations

from sqlalchemy import select
from support.scenario import Consented

from credit_gateway.adapters.grpc.v1 import inquiry_pb2_grpc
from credit_gateway.adapters.storage.tables import ConsentRow


def test_a_keyed_retry_counts_one_use(world: Consented) -> None:
    token = world.grant()
    md = (*world.md(), ("idempotency-key", "loan-42"))
    stub = inquiry_pb2_grpc.InquiryServiceStub(world.agency.channel)
    answers = [
        stub.QueryAuthorized(world.request(token), metadata=md, timeout=10) for _ in range(3)
    ]
    assert len({a.inquiry_id for a in answers}) == 1
    with world.h.db.transaction(write=False) as session:
        assert session.scalars(select(ConsentRow.uses)).all() == [1]
