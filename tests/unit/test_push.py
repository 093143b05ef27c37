"""The pure parts of a push (services/push.py, domain/pushed.py): the origin's signed bytes, the
platform's push rights, the provider's keys, the origin's signature. No server, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from support.pushed import public_jwk

import credit_gateway
from credit_gateway.crypto.signatures import sign_es256
from credit_gateway.domain.agreements import Agreement, AgreementStatus, Operation, Quotas
from credit_gateway.domain.catalog import Catalog, Category, DisclosureLevel
from credit_gateway.domain.decisions import Reason
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.pushed import OriginClaim
from credit_gateway.services.push import (
    MAX_JWKS_BYTES,
    PushedIncoming,
    Violation,
    provider_keys,
    push_rights,
    verify_origin,
)
from credit_gateway.services.submission import Incoming

CATALOG = Catalog.from_document(
    json.loads((Path(credit_gateway.__file__).parent / "data" / "catalog.json").read_text())
)

NOW = datetime(2026, 5, 10, 8, 0, tzinfo=UTC)


def test_origin_claim_signing_bytes_are_the_canonical_json_of_what_the_origin_vouches_for() -> None:
    claim = OriginClaim(
        origin_record_id="nat-0001",
        provider_code="91420100MA4K0AMR01",
        provider_jwks=b'{"keys":[]}',
        record_digest="ab" * 32,
        provider_signature=bytes([0x01, 0xFE]),
    )

    # Members sorted, no white space; the JWK Set's digest is SHA-256 of the bytes as pushed
    # (`printf '{"keys":[]}' | sha256sum`); the provider's signature in lower-case hex.
    assert claim.signing_bytes() == (
        b'{"format":"credit-gateway/pushed/v1",'
        b'"origin_record_id":"nat-0001",'
        b'"provider":"91420100MA4K0AMR01",'
        b'"provider_jwks_sha256":'
        b'"9638d11914735d0072002dd4d67c734a94ee7a0cd845e6dcbc984ee7581860a7",'
        b'"provider_signature":"01fe",'
        b'"record_sha256":"' + b"ab" * 32 + b'"}'
    )


# --- push rights ----------------------------------------------------------------------------


def agreement(
    agreement_id: str,
    operations: tuple[Operation, ...] = (Operation.PUSH,),
    categories: tuple[Category, ...] = (Category.REGISTRATION,),
    items: tuple[str, ...] = (),
    valid_until: datetime = NOW + timedelta(days=30),
) -> Agreement:
    return Agreement(
        id=agreement_id,
        counterparty="cn-national",
        operations=frozenset(operations),
        items=frozenset(items),
        categories=frozenset(categories),
        purposes=frozenset({"EXCHANGE"}),
        levels=frozenset({DisclosureLevel.OPEN}),
        subject_kinds=frozenset(SubjectKind),
        quotas=Quotas(10, 10),
        valid_from=NOW - timedelta(days=1),
        valid_until=valid_until,
    )


ACTIVE, SUSPENDED = AgreementStatus.ACTIVE, AgreementStatus.SUSPENDED


@pytest.mark.parametrize(
    ("agreements", "reason", "about"),
    [
        ([], Reason.AGREEMENT_REQUIRED, None),
        ([(agreement("a", (Operation.INQUIRY,)), ACTIVE)], Reason.AGREEMENT_REQUIRED, None),
        ([(agreement("a"), SUSPENDED)], Reason.AGREEMENT_SUSPENDED, "a"),
        ([(agreement("a", valid_until=NOW), ACTIVE)], Reason.AGREEMENT_EXPIRED, "a"),
        (
            [(agreement("a", valid_until=NOW), ACTIVE), (agreement("b"), SUSPENDED)],
            Reason.AGREEMENT_EXPIRED,
            "a",
        ),
    ],
)
def test_without_a_push_agreement_in_force_the_rights_say_why(
    agreements: list[tuple[Agreement, AgreementStatus]], reason: Reason, about: str | None
) -> None:
    rights = push_rights(agreements, NOW)

    assert (rights.agreements, rights.refusal, rights.refused_agreement) == ((), reason, about)


def test_the_rights_are_the_items_of_every_push_agreement_in_force_together() -> None:
    registration = agreement("a", categories=(Category.REGISTRATION,))
    punishments = agreement("b", categories=(), items=("ADM.PUNISHMENT",))
    permits = agreement("c", categories=(Category.ADMINISTRATIVE_PERMIT,))
    inquiry_only = agreement("d", (Operation.INQUIRY,), categories=(Category.ADMINISTRATIVE_OTHER,))
    rights = push_rights(
        [
            (registration, ACTIVE),
            (punishments, ACTIVE),
            (permits, SUSPENDED),
            (inquiry_only, ACTIVE),
        ],
        NOW,
    )

    assert rights.refusal is None
    covered = {code for code, item in CATALOG.items.items() if rights.covers(item)}
    assert covered == {"REG.ENTERPRISE", "ADM.PUNISHMENT"}


# --- the provider's keys --------------------------------------------------------------------


def jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    return public_jwk(key, kid)


PROVIDER_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("jwks", "why"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "object"),
        ('{"keys": []}'.encode("utf-16"), "UTF-8"),
        (b'{"keys": {}}', '"keys" is not a list'),
        (b'{"keys": ["k"]}', '"keys" is not a list'),
        (b'{"keys": [], "keys": []}', "duplicate"),
        (b'{"keys": []}', "no EC P-256 public key"),
        (b'{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}', "no EC P-256 public key"),
        (b'{"keys": [{"kty": "EC", "crv": "P-256", "x": 1, "y": []}]}', "no EC P-256"),
        (json.dumps({"keys": [{"kty": "EC", "d": "AA"}]}).encode(), "private key"),
        (json.dumps({"keys": [{"kid": "k" * 129}]}).encode(), "kid"),
        (json.dumps({"keys": [{"kid": "k\u0000"}]}).encode(), "kid"),
        (json.dumps({"keys": [{"kid": 7}]}).encode(), "kid"),
        (b" " * (MAX_JWKS_BYTES + 1), "more than"),
    ],
)
def test_a_provider_jwks_we_do_not_take_is_the_records_rejection(jwks: bytes, why: str) -> None:
    found = provider_keys(jwks)

    assert isinstance(found, Violation)
    assert (found.reason, found.field) == ("PROVIDER_KEYS_INVALID", "provider_jwks")
    assert why in found.description


def test_a_provider_jwks_gives_its_p256_keys_by_kid_and_thumbprint() -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    jwks = json.dumps({"keys": [jwk(PROVIDER_KEY, "k1"), public_jwk(other, "p384")]}).encode()

    found = provider_keys(jwks)

    assert not isinstance(found, Violation)
    assert "k1" in found
    assert "p384" not in found
    assert found["k1"].public_numbers() == PROVIDER_KEY.public_key().public_numbers()


# --- the origin's signature -----------------------------------------------------------------


ORIGIN_KEY = ec.generate_private_key(ec.SECP256R1())
JWKS = json.dumps({"keys": [jwk(PROVIDER_KEY, "k1")]}).encode()
DIGEST = "cd" * 32


def pushed(origin_key_id: str = "platform-1", **claim: Any) -> PushedIncoming:
    values = {"origin_record_id": "nat-1", "provider_code": "P-1", "provider_jwks": JWKS,
              "record_digest": DIGEST, "provider_signature": b"\x01" * 64} | claim  # fmt: skip
    signature = sign_es256(ORIGIN_KEY, OriginClaim(**values).signing_bytes())
    record = Incoming("p-1", "REG.ENTERPRISE", "X", b"{}", NOW, None, b"\x01" * 64, "k1")
    return PushedIncoming(record, "P-1", JWKS, "nat-1", signature, origin_key_id)


def test_the_origin_signature_verifies_under_the_platforms_key() -> None:
    assert verify_origin(pushed(), DIGEST, {"platform-1": ORIGIN_KEY.public_key()}) is None


@pytest.mark.parametrize(
    ("incoming", "field"),
    [
        (pushed(origin_key_id="unknown"), "origin_key_id"),
        (pushed(record_digest="ef" * 32), "origin_signature"),  # signed another record
        (pushed(provider_jwks=b'{"keys":[]}'), "origin_signature"),  # vouched other keys
        (pushed(provider_code="P-2"), "origin_signature"),
        (pushed(origin_record_id="nat-2"), "origin_signature"),
        (pushed(provider_signature=b"\x02" * 64), "origin_signature"),
    ],
)
def test_an_origin_signature_over_anything_else_does_not_verify(
    incoming: PushedIncoming, field: str
) -> None:
    problem = verify_origin(incoming, DIGEST, {"platform-1": ORIGIN_KEY.public_key()})

    assert problem is not None
    assert (problem.reason, problem.field) == ("ORIGIN_SIGNATURE_INVALID", field)
