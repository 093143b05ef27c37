"""Protobuf <-> domain conversions shared by the servicers.

Malformed input never becomes a domain object: every conversion either builds a valid one or
raises InvalidArgument naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from credit_gateway.adapters.grpc.v1 import common_pb2, consent_pb2
from credit_gateway.domain.catalog import ITEM_CODE, Category
from credit_gateway.domain.consent import (
    Consent,
    ConsentRequest,
    ConsentStatus,
    ConsentTerms,
    RequestStatus,
)
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.release import InquiryResult, Released
from credit_gateway.errors import FieldViolation, InvalidArgument

MAX_TERMS_ITEMS = 100
MAX_PURPOSE_TEXT = 500


_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


def identifier(value: str, field: str, *, max_length: int = 64) -> str:
    """An id the caller names (agreement, consent, request, purpose): required, short and plain,
    so a caller's typo is INVALID_ARGUMENT here, never a database error further in."""
    if not value:
        raise InvalidArgument.field(field, "required")
    if len(value) > max_length or not _IDENTIFIER.fullmatch(value):
        raise InvalidArgument.field(field, f"at most {max_length} letters, digits and . _ : -")
    return value


def item_codes(values: Iterable[str], field: str = "item_codes") -> tuple[str, ...]:
    codes = tuple(values)
    bad = [c for c in codes if not ITEM_CODE.fullmatch(c)]
    if bad:
        raise InvalidArgument.field(field, "not an item code ([A-Z][A-Z0-9_.-], at most 64)")
    return codes


def to_datetime(ts: Timestamp, field: str, *, required: bool = True) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        if required:
            raise InvalidArgument.field(field, "required")
        return None
    if ts.nanos % 1000:
        # A datetime holds microseconds: cutting the rest would change the signed string
        # (docs/canonical.md) and turn the caller's precision into a BAD_SIGNATURE.
        raise InvalidArgument.field(field, "finer than a microsecond: send at most 6 digits")
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument.field(field, "not a valid timestamp") from exc


def required_datetime(ts: Timestamp, field: str) -> datetime:
    value = to_datetime(ts, field)
    assert value is not None  # to_datetime raises for a missing required value
    return value


def to_timestamp(value: datetime | None) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value)
    return ts


def terms_from_pb(pb: consent_pb2.ConsentTerms, grantee: str | None = None) -> ConsentTerms:
    problems: list[FieldViolation] = []
    categories = []
    for c in pb.categories:
        try:
            categories.append(Category(c))
        except ValueError:
            problems.append(FieldViolation("terms.categories", f"{c!r} is not a category"))
    if len(pb.item_codes) > MAX_TERMS_ITEMS:
        problems.append(FieldViolation("terms.item_codes", f"at most {MAX_TERMS_ITEMS} items"))
    if not (grantee or pb.grantee):
        problems.append(FieldViolation("terms.grantee", "required"))
    if len(pb.purpose_text) > MAX_PURPOSE_TEXT:
        # Never cut it: the subject consents to (and may sign) exactly this text.
        problems.append(
            FieldViolation("terms.purpose_text", f"at most {MAX_PURPOSE_TEXT} characters")
        )
    if not pb.purpose_code:
        problems.append(FieldViolation("terms.purpose_code", "required"))
    stamps: dict[str, datetime] = {}
    for name in ("data_from", "data_to", "valid_from", "valid_until"):
        try:
            stamps[name] = required_datetime(getattr(pb, name), f"terms.{name}")
        except InvalidArgument as exc:
            problems += exc.violations
    if problems:
        raise InvalidArgument("consent terms are malformed", violations=tuple(problems))
    return ConsentTerms(
        grantee=grantee or pb.grantee,
        purpose_code=pb.purpose_code,
        purpose_text=pb.purpose_text,
        item_codes=frozenset(pb.item_codes),
        categories=frozenset(categories),
        data_from=stamps["data_from"],
        data_to=stamps["data_to"],
        valid_from=stamps["valid_from"],
        valid_until=stamps["valid_until"],
        max_uses=pb.max_uses,
    )


def terms_to_pb(terms: ConsentTerms) -> consent_pb2.ConsentTerms:
    return consent_pb2.ConsentTerms(
        grantee=terms.grantee,
        purpose_code=terms.purpose_code,
        purpose_text=terms.purpose_text,
        item_codes=sorted(terms.item_codes),
        categories=sorted(c.value for c in terms.categories),
        data_from=to_timestamp(terms.data_from),
        data_to=to_timestamp(terms.data_to),
        valid_from=to_timestamp(terms.valid_from),
        valid_until=to_timestamp(terms.valid_until),
        max_uses=terms.max_uses,
    )


_STATUS = {s: getattr(consent_pb2, f"CONSENT_STATUS_{s.name}") for s in ConsentStatus}
_REQUEST_STATUS = {
    s: getattr(consent_pb2, f"CONSENT_REQUEST_STATUS_{s.name}") for s in RequestStatus
}


def consent_to_pb(consent: Consent, subject_code: str, now: datetime) -> consent_pb2.Consent:
    from credit_gateway.domain.consent import CONDITIONS

    return consent_pb2.Consent(
        consent_id=consent.id,
        subject_code=subject_code,
        terms=terms_to_pb(consent.terms),
        status=_STATUS[consent.effective_status(now)],
        uses=consent.uses,
        granted_at=to_timestamp(consent.granted_at),
        status_changed_at=to_timestamp(consent.status_changed_at),
        evidence=consent.evidence,
        conditions=list(CONDITIONS),
    )


def request_to_pb(request: ConsentRequest, subject_code: str) -> consent_pb2.ConsentRequest:
    return consent_pb2.ConsentRequest(
        request_id=request.id,
        subject_code=subject_code,
        terms=terms_to_pb(request.terms),
        status=_REQUEST_STATUS[request.status],
        requested_at=to_timestamp(request.requested_at),
        consent_id=request.consent_id or "",
    )


def consent_statuses(values: list[int]) -> list[ConsentStatus]:
    by_value = {v: k for k, v in _STATUS.items()}
    try:
        return [by_value[v] for v in values]
    except KeyError as exc:
        raise InvalidArgument.field("statuses", "unknown status") from exc


def request_statuses(values: list[int]) -> list[RequestStatus]:
    by_value = {v: k for k, v in _REQUEST_STATUS.items()}
    try:
        return [by_value[v] for v in values]
    except KeyError as exc:
        raise InvalidArgument.field("statuses", "unknown status") from exc


# SUBJECT_KIND_<NAME> for each domain kind; UNSPECIFIED is "not said" (None), never a guess.
_PB_SUBJECT_KINDS = {k: getattr(common_pb2, f"SUBJECT_KIND_{k.name}") for k in SubjectKind}
_SUBJECT_KINDS = {v: k for k, v in _PB_SUBJECT_KINDS.items()}


def subject_kind_to_pb(kind: SubjectKind | None) -> common_pb2.SubjectKind:
    return common_pb2.SUBJECT_KIND_UNSPECIFIED if kind is None else _PB_SUBJECT_KINDS[kind]


def subject_kind(value: int, field: str = "subject_kind") -> SubjectKind | None:
    """The kind a request says its subject code names; None when it says none."""
    if value == common_pb2.SUBJECT_KIND_UNSPECIFIED:
        return None
    try:
        return _SUBJECT_KINDS[value]
    except KeyError as exc:  # proto3 enums are open: a newer client's value arrives as a number
        raise InvalidArgument.field(field, f"unknown subject kind {value}") from exc


def released_record(r: Released) -> common_pb2.ReleasedRecord:
    return common_pb2.ReleasedRecord(
        record_id=r.record_id,
        item_code=r.item_code,
        provider_code=r.provider_id,
        payload_json=r.payload,
        occurred_at=to_timestamp(r.occurred_at),
        labels=list(r.labels),
    )


def query_response(result: InquiryResult) -> common_pb2.QueryResponse:
    return common_pb2.QueryResponse(
        inquiry_id=result.inquiry_id,
        records=[released_record(r) for r in result.released],
        withheld=[
            common_pb2.Withheld(item_code=w.item_code, reason=w.reason, count=w.count)
            for w in result.withheld
        ],
        conditions=list(result.conditions),
        consent_id=result.consent_id or "",
        agreement_id=result.agreement_id or "",
    )
