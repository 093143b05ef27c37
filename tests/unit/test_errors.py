"""The errors that used to live outside the GatewayError tree, raised by the code that raises
them, land on the branch that says who is at fault, with a stable reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.keys import Keys, consent_verifier

from credit_gateway import errors
from credit_gateway.consent.tokens import ConsentTokenError
from credit_gateway.devpki import pki
from credit_gateway.domain.agreements import Agreement, Quotas, aware
from credit_gateway.domain.canonical import CanonicalError, canonical_bytes, parse_json_object
from credit_gateway.domain.catalog import Catalog, CatalogError, string_list
from credit_gateway.domain.identifiers import IdentifierError, UnifiedSocialCreditCode
from credit_gateway.domain.participants import Participant, ParticipantKind, ParticipantStatus
from credit_gateway.errors import (
    DomainError,
    GatewayError,
    InfrastructureError,
    InvalidArgument,
    PermissionDenied,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _reversed_agreement() -> object:
    return Agreement(
        id="agr-1",
        counterparty="agency-a",
        operations=frozenset(),
        items=frozenset(),
        categories=frozenset(),
        purposes=frozenset(),
        levels=frozenset(),
        subject_kinds=frozenset(),
        quotas=Quotas(1, 1),
        valid_from=NOW,
        valid_until=NOW - timedelta(days=1),
    )


def _bad_participant() -> object:
    return Participant(
        "Agency A",
        ParticipantKind.PROVIDING_UNIT,
        "org",
        "A",
        ParticipantStatus.ACTIVE,
        frozenset(),
    )


def _garbage_consent_token() -> object:
    return consent_verifier(Keys()).verify("not.a.token", NOW)


CASES = [
    pytest.param(
        lambda: UnifiedSocialCreditCode.parse("91350100M000100Y4Y"),
        IdentifierError,
        InvalidArgument,
        "BAD_IDENTIFIER",
        id="identifier",
    ),
    pytest.param(
        lambda: parse_json_object(b"{"), CanonicalError, InvalidArgument, "BAD_JSON", id="json"
    ),
    pytest.param(
        lambda: canonical_bytes(float("nan")),
        CanonicalError,
        InvalidArgument,
        "BAD_JSON",
        id="not-canonical",
    ),
    pytest.param(
        lambda: Catalog.from_document({"version": "1"}),
        CatalogError,
        InvalidArgument,
        "CATALOG_INVALID",
        id="catalog",
    ),
    pytest.param(
        _reversed_agreement, DomainError, InvalidArgument, "AGREEMENT_INVALID", id="agreement"
    ),
    pytest.param(
        _bad_participant, DomainError, InvalidArgument, "PARTICIPANT_INVALID", id="participant"
    ),
    pytest.param(
        lambda: aware("tomorrow", "valid_from"),
        DomainError,
        InvalidArgument,
        "TIMESTAMP_INVALID",
        id="not-a-timestamp",
    ),
    pytest.param(
        lambda: aware("2026-03-01T12:00:00", "valid_from"),
        DomainError,
        InvalidArgument,
        "TIMESTAMP_INVALID",
        id="naive-timestamp",
    ),
    pytest.param(
        lambda: string_list("NP.INCOME", "items"),
        DomainError,
        InvalidArgument,
        "INVALID_ARGUMENT",
        id="string-list",
    ),
    pytest.param(
        _garbage_consent_token,
        ConsentTokenError,
        PermissionDenied,
        "CONSENT_TOKEN_INVALID",
        id="consent-token",
    ),
    pytest.param(
        # The name is checked before the directory is looked at: nothing is touched.
        lambda: pki.issue_participant(Path("/nonexistent"), "Bad Name", "credit-agency"),
        pki.PkiError,
        InfrastructureError,
        "PKI",
        id="pki",
    ),
]


@pytest.mark.parametrize(("raise_it", "cls", "branch", "reason"), CASES)
def test_former_outsiders_are_gateway_errors_on_their_branch(
    raise_it: Callable[[], object], cls: type[GatewayError], branch: type[GatewayError], reason: str
) -> None:
    with pytest.raises(cls) as raised:
        raise_it()
    error = raised.value
    assert isinstance(error, branch)
    assert error.reason == reason
    assert error.message
    assert str(error) == error.message
    # A refusal is never a ValueError: `except ValueError` around a bug must not swallow it.
    assert not isinstance(error, ValueError)


def test_identifier_error_keeps_its_rule() -> None:
    with pytest.raises(IdentifierError) as raised:
        UnifiedSocialCreditCode.parse("91350100M000100Y4Y")
    assert raised.value.rule == "check_character"
    assert "position 18" in raised.value.message


def test_consent_token_error_keeps_its_reason_and_consent() -> None:
    error = ConsentTokenError("CONSENT_EXPIRED", "consent-1")
    assert (error.reason, error.consent_id, error.message) == (
        "CONSENT_EXPIRED",
        "consent-1",
        "CONSENT_EXPIRED",
    )
    assert ConsentTokenError("CONSENT_TOKEN_INVALID").consent_id is None


def _gateway_errors(cls: type[Any]) -> set[type[Any]]:
    return {cls}.union(*(_gateway_errors(sub) for sub in cls.__subclasses__()))


def test_the_tree_in_the_docstring_names_every_error() -> None:
    # Every error class loaded by the imports above: the tree's own and the former outsiders.
    assert errors.__doc__ is not None
    drawn = {
        line.split("── ")[1].split()[0] for line in errors.__doc__.splitlines() if "── " in line
    }
    assert {cls.__name__ for cls in _gateway_errors(GatewayError)} - {"GatewayError"} <= drawn
