"""What a client of the gateway sends, built the way the gateway checks it (for tools, the demo,
the benchmark and the tests: the one place a SubmittedRecord is signed)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from credit_gateway.adapters.grpc.convert import subject_kind_to_pb, to_timestamp
from credit_gateway.adapters.grpc.v1 import submission_pb2
from credit_gateway.crypto.signatures import sign_es256
from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.records import Submission


def signed_record(
    submission: Submission, key: ec.EllipticCurvePrivateKey, key_id: str
) -> submission_pb2.SubmittedRecord:
    """The record as a providing unit submits it: ES256 over its canonical bytes
    (docs/canonical.md), under the key id of a key in the provider's registered JWKS."""
    notice = submission.notice
    return submission_pb2.SubmittedRecord(
        provider_record_id=submission.provider_record_id,
        item_code=submission.item_code,
        subject_code=submission.subject_code,
        subject_kind=subject_kind_to_pb(submission.subject_kind),
        payload_json=canonical_bytes(submission.payload),
        occurred_at=to_timestamp(submission.occurred_at),
        notice=None
        if notice is None
        else submission_pb2.WrittenNotice(
            number=notice.number, delivered_at=to_timestamp(notice.delivered_at)
        ),
        signature=sign_es256(key, submission.signing_bytes()),
        key_id=key_id,
    )
