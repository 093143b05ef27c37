"""Protobuf <-> domain at the gRPC edge (adapters/grpc/convert.py): malformed input never becomes
a domain object; each refusal is INVALID_ARGUMENT naming its field."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import assume, given
from hypothesis import strategies as st

from credit_gateway.adapters.grpc import convert
from credit_gateway.adapters.grpc.v1 import consent_pb2
from credit_gateway.domain.catalog import Category
from credit_gateway.domain.consent import (
    CONDITIONS,
    Consent,
    ConsentRequest,
    ConsentStatus,
    ConsentTerms,
    RequestStatus,
)
from credit_gateway.errors import InvalidArgument

NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Timestamp's range (google/protobuf/timestamp.proto): 0001-01-01 to 9999-12-31, UTC.
instants = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
).map(lambda d: d.replace(tzinfo=UTC))


def refusal(call: Callable[..., object], *args: object, **kwargs: object) -> dict[str, str]:
    """The field violations of the InvalidArgument the call raises, by field."""
    with pytest.raises(InvalidArgument) as caught:
        call(*args, **kwargs)
    return {v.field: v.description for v in caught.value.violations}


def ts(value: datetime) -> Timestamp:
    return convert.to_timestamp(value)


# --- identifiers and item codes ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["agr-1", "cns_01HX", "a", "A.b_c:d-e", "9" * 64])
def test_plain_short_identifiers_pass(value: str) -> None:
    assert convert.identifier(value, "agreement_id") == value


@pytest.mark.parametrize(
    ("value", "description"),
    [
        ("", "required"),
        ("a" * 65, "at most 64 letters, digits and . _ : -"),
        ("agr\x00x", "at most 64 letters, digits and . _ : -"),
        ("agr 1", "at most 64 letters, digits and . _ : -"),
        ("-agr", "at most 64 letters, digits and . _ : -"),
        ("agr-1\n", "at most 64 letters, digits and . _ : -"),
        ("合同", "at most 64 letters, digits and . _ : -"),
    ],
    ids=["empty", "too-long", "nul", "space", "leading-dash", "trailing-newline", "non-ascii"],
)
def test_other_identifiers_are_refused_naming_the_field(value: str, description: str) -> None:
    assert refusal(convert.identifier, value, "agreement_id") == {"agreement_id": description}


def test_the_identifier_length_is_the_callers() -> None:
    assert convert.identifier("c" * 40, "consent_id", max_length=40) == "c" * 40
    assert refusal(convert.identifier, "c" * 41, "consent_id", max_length=40) == {
        "consent_id": "at most 40 letters, digits and . _ : -"
    }


@given(st.text(max_size=80))
def test_an_identifier_passes_exactly_when_it_is_short_and_plain(value: str) -> None:
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", value):
        assert convert.identifier(value, "purpose") == value
    else:
        assert list(refusal(convert.identifier, value, "purpose")) == ["purpose"]


def test_item_codes_pass_as_a_tuple_in_their_order() -> None:
    assert convert.item_codes(["TAX.PAID", "ADM.PUNISHMENT"]) == ("TAX.PAID", "ADM.PUNISHMENT")
    assert convert.item_codes([]) == ()


@pytest.mark.parametrize("bad", ["adm.punishment", "ADM PUNISHMENT", "ADM.PUNISHMENT\n", "A", ""])
def test_one_malformed_item_code_refuses_the_list(bad: str) -> None:
    violations = refusal(convert.item_codes, ["TAX.PAID", bad], "query.item_codes")
    assert list(violations) == ["query.item_codes"]


# --- timestamps --------------------------------------------------------------------------------


@given(instants)
def test_an_instant_survives_the_round_trip(value: datetime) -> None:
    assume(value != EPOCH)  # the empty Timestamp: see below
    assert convert.required_datetime(convert.to_timestamp(value), "at") == value


@given(
    seconds=st.integers(-62135596800, 253402300799),
    micros=st.integers(0, 999_999),
)
def test_a_microsecond_timestamp_survives_the_round_trip(seconds: int, micros: int) -> None:
    assume(seconds or micros)
    wire = Timestamp(seconds=seconds, nanos=micros * 1000)
    value = convert.required_datetime(wire, "at")
    assert value.tzinfo is UTC
    assert convert.to_timestamp(value) == wire


@given(
    seconds=st.integers(-62135596800, 253402300799),
    nanos=st.integers(0, 999_999_999).filter(lambda n: n % 1000),
)
def test_finer_than_a_microsecond_is_refused_not_cut(seconds: int, nanos: int) -> None:
    # Cutting would change the signed string the caller computed (docs/canonical.md).
    assert refusal(convert.to_datetime, Timestamp(seconds=seconds, nanos=nanos), "occurred_at") == {
        "occurred_at": "finer than a microsecond: send at most 6 digits"
    }


def test_the_empty_timestamp_is_missing() -> None:
    # proto3 cannot tell an unset Timestamp from the epoch: the epoch itself cannot be sent.
    assert refusal(convert.to_datetime, Timestamp(), "terms.valid_from") == {
        "terms.valid_from": "required"
    }
    assert convert.to_datetime(Timestamp(), "until", required=False) is None
    assert convert.to_timestamp(None) == Timestamp()
    assert convert.to_timestamp(EPOCH) == Timestamp()


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(253402300800, 0), (-62135596801, 0), (2**40, 0), (1, 1_000_000_000), (1, -1000)],
    ids=["after-9999", "before-0001", "far-future", "nanos-overflow", "negative-nanos"],
)
def test_out_of_range_timestamps_are_refused(seconds: int, nanos: int) -> None:
    assert refusal(convert.to_datetime, Timestamp(seconds=seconds, nanos=nanos), "at") == {
        "at": "not a valid timestamp"
    }


def test_before_the_epoch_is_an_instant_like_any_other() -> None:
    assert convert.required_datetime(Timestamp(seconds=-1), "at") == EPOCH - timedelta(seconds=1)


# --- consent terms -----------------------------------------------------------------------------


def terms(**changes: object) -> ConsentTerms:
    fields: dict[str, object] = {
        "grantee": "zx-credit",
        "purpose_code": "LOAN_APPROVAL",
        "purpose_text": "mortgage application",
        "item_codes": frozenset({"TAX.PAID", "ADM.PUNISHMENT"}),
        "categories": frozenset({Category("administrative_other")}),
        "data_from": NOW - timedelta(days=365),
        "data_to": NOW,
        "valid_from": NOW,
        "valid_until": NOW + timedelta(days=30, microseconds=250),
        "max_uses": 5,
    }
    return ConsentTerms(**{**fields, **changes})  # type: ignore[arg-type]


def test_terms_survive_the_round_trip() -> None:
    pb = convert.terms_to_pb(terms())
    assert list(pb.item_codes) == ["ADM.PUNISHMENT", "TAX.PAID"]  # sets go out sorted
    assert convert.terms_from_pb(pb) == terms()


def test_the_callers_grantee_replaces_what_the_terms_say() -> None:
    # A grantee asking for consent names no one but itself.
    pb = convert.terms_to_pb(terms(grantee="someone-else"))
    assert convert.terms_from_pb(pb, grantee="zx-credit").grantee == "zx-credit"


def test_every_problem_of_the_terms_is_named_at_once() -> None:
    pb = consent_pb2.ConsentTerms(
        categories=["administrative_other", "not-a-category"],
        item_codes=[f"ITEM.{i}" for i in range(convert.MAX_TERMS_ITEMS + 1)],
        purpose_text="x" * (convert.MAX_PURPOSE_TEXT + 1),
        data_from=Timestamp(seconds=1, nanos=1),
    )
    assert refusal(convert.terms_from_pb, pb) == {
        "terms.categories": "'not-a-category' is not a category",
        "terms.item_codes": f"at most {convert.MAX_TERMS_ITEMS} items",
        "terms.grantee": "required",
        "terms.purpose_text": f"at most {convert.MAX_PURPOSE_TEXT} characters",
        "terms.purpose_code": "required",
        "terms.data_from": "finer than a microsecond: send at most 6 digits",
        "terms.data_to": "required",
        "terms.valid_from": "required",
        "terms.valid_until": "required",
    }


def test_purpose_text_at_the_limit_is_kept_whole() -> None:
    text = "x" * convert.MAX_PURPOSE_TEXT
    pb = convert.terms_to_pb(terms(purpose_text=text))
    assert convert.terms_from_pb(pb).purpose_text == text


# --- consents, requests and status lists -------------------------------------------------------


def consent(status: ConsentStatus = ConsentStatus.ACTIVE, uses: int = 1) -> Consent:
    return Consent("cns_1", "sbj_1", terms(), status, uses, NOW, NOW, "real_name_assertion")


def test_a_consent_goes_out_with_its_effective_status_and_conditions() -> None:
    pb = convert.consent_to_pb(consent(), "11010519491231002X", NOW + timedelta(days=1))
    assert (pb.consent_id, pb.subject_code, pb.uses) == ("cns_1", "11010519491231002X", 1)
    assert pb.status == consent_pb2.CONSENT_STATUS_ACTIVE
    assert list(pb.conditions) == list(CONDITIONS)
    assert convert.terms_from_pb(pb.terms) == terms()
    lapsed = convert.consent_to_pb(consent(), "11010519491231002X", NOW + timedelta(days=31))
    assert lapsed.status == consent_pb2.CONSENT_STATUS_EXPIRED
    spent = convert.consent_to_pb(consent(uses=5), "11010519491231002X", NOW)
    assert spent.status == consent_pb2.CONSENT_STATUS_EXHAUSTED


def test_a_request_goes_out_with_its_consent_once_approved() -> None:
    pending = ConsentRequest("req_1", "sbj_1", terms(), RequestStatus.PENDING, NOW)
    pb = convert.request_to_pb(pending, "11010519491231002X")
    assert (pb.request_id, pb.status, pb.consent_id) == (
        "req_1",
        consent_pb2.CONSENT_REQUEST_STATUS_PENDING,
        "",
    )
    approved = ConsentRequest("req_1", "sbj_1", terms(), RequestStatus.APPROVED, NOW, "cns_1")
    assert convert.request_to_pb(approved, "x").consent_id == "cns_1"


StatusList = Callable[[list[int]], list[Any]]


@pytest.mark.parametrize(
    ("domain", "prefix", "convert_list"),
    [
        (ConsentStatus, "CONSENT_STATUS_", convert.consent_statuses),
        (RequestStatus, "CONSENT_REQUEST_STATUS_", convert.request_statuses),
    ],
    ids=["consent", "request"],
)
def test_every_status_has_its_own_wire_value_and_unspecified_is_refused(
    domain: type[enum.Enum], prefix: str, convert_list: StatusList
) -> None:
    values = [getattr(consent_pb2, prefix + status.name) for status in domain]
    assert len(set(values)) == len(values)
    assert convert_list(values) == list(domain)
    assert convert_list(values[::-1]) == list(domain)[::-1]
    assert convert_list([]) == []
    for unknown in (getattr(consent_pb2, prefix + "UNSPECIFIED"), max(values) + 1):
        assert refusal(convert_list, [values[0], unknown]) == {"statuses": "unknown status"}
