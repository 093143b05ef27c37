"""The parts of a working gateway that the admission, fault and shutdown tests share: a providing
unit's signed record, an agency whose consented QueryAuthorized is released, and what the
database holds afterwards (stored records, audit entries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
from sqlalchemy import func, select
from support.audit_entries import inquiry_ids
from support.harness import PERSON, Harness, Participant, make_agreement, metadata, signed_record

from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.v1 import (
    common_pb2,
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2_grpc,
)
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import RecordRow, SubjectRow

AGREEMENT = "agr-zx-credit"
# The catalog's purpose with the most uses per consent (50): the loops below need many.
PURPOSE = "CONTRACT_DUE_DILIGENCE"
MAX_USES = 50


def punishment_payload(decision_no: str) -> dict[str, Any]:
    """An ADM.PUNISHMENT payload that fits the item's schema."""
    return {
        "decision_no": decision_no,
        "violation": "unlicensed trading",
        "penalty": "fine",
        "decided_on": "2026-01-02",
        "authority": "Wuhan AMR",
    }


def punishment(provider: Participant, record_id: str, now: datetime) -> Any:
    """A valid, signed ADM.PUNISHMENT record about PERSON (stored unless something breaks)."""
    return signed_record(
        provider,
        record_id=record_id,
        item="ADM.PUNISHMENT",
        subject=PERSON,
        payload=punishment_payload(f"D-{record_id}"),
        occurred_at=now - timedelta(days=5),
        notice="N-1",
    )


def submit(h: Harness, provider: Participant, records: list[Any]) -> Any:
    """The provider's SubmitRecords of `records`: its SubmissionResult."""
    stub = submission_pb2_grpc.SubmissionServiceStub(provider.channel)
    return stub.SubmitRecords(iter(records), metadata=metadata(h.token(provider)), timeout=10)


def summary(result: Any) -> list[tuple[int, str, int, list[tuple[str, str]]]]:
    """(index, provider record id, outcome, [(reason, field)]) of each record's result."""
    return [
        (r.index, r.provider_record_id, r.outcome, [(v.reason, v.field) for v in r.violations])
        for r in result.results
    ]


def stored_subject_kinds(db: Database) -> list[str]:
    """The kind of every stored subject, sorted."""
    with db.transaction(write=False) as session:
        return sorted(session.scalars(select(SubjectRow.kind)))


def count(db: Database, table: type[Any]) -> int:
    with db.transaction(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def stored_record_ids(db: Database) -> list[str]:
    with db.transaction(write=False) as session:
        return sorted(session.scalars(select(RecordRow.provider_record_id)))


def audit_ids(db: Database) -> set[str]:
    """The inquiries' audit entries' ids (a release's entry has the inquiry_id its answer
    carried); consent changes and operator actions are on record too, and left out."""
    return inquiry_ids(db)


@dataclass
class Consented:
    """An agency with an agreement, a record about PERSON, and a real-name portal through which
    PERSON grants the agency consents."""

    h: Harness
    provider: Participant
    agency: Participant
    portal: Participant

    def grant(self) -> str:
        """A fresh consent token for PERSON's punishment records, good for MAX_USES releases."""
        return str(self.granted().token.token)

    def granted(self, **terms: Any) -> consent_pb2.GrantConsentResponse:
        """The portal's answer to PERSON's grant (the consent and its token); `terms` change
        the consent's terms."""
        return self.consents.GrantConsent(
            consent_pb2.GrantConsentRequest(terms=self.terms(**terms)),
            metadata=self.subject_md(),
            timeout=10,
        )

    def other_agency(self, agency_id: str) -> Participant:
        """Another credit agency, with an agreement like the agency's (agreement agr-<id>)."""
        other = self.h.add_participant(agency_id, "credit-agency")
        make_agreement(
            self.h,
            other,
            agreement_id=f"agr-{agency_id}",
            categories=("administrative_punishment",),
            purposes=(PURPOSE,),
        )
        return other

    def terms(self, **changes: Any) -> consent_pb2.ConsentTerms:
        now = self.h.clock.now
        fields: dict[str, Any] = {
            "grantee": self.agency.id,
            "purpose_code": PURPOSE,
            "purpose_text": "due diligence before a supply contract",
            "item_codes": ["ADM.PUNISHMENT"],
            "data_from": to_timestamp(now - timedelta(days=365)),
            "data_to": to_timestamp(now + timedelta(days=1)),
            "valid_from": to_timestamp(now - timedelta(minutes=1)),
            "valid_until": to_timestamp(now + timedelta(days=30)),
            "max_uses": MAX_USES,
        }
        return consent_pb2.ConsentTerms(**{**fields, **changes})

    def subject_md(self, code: str = PERSON) -> tuple[tuple[str, str], ...]:
        """A subject token for `code`, through the portal."""
        return metadata(self.h.subject_token(self.portal, code))

    @property
    def consents(self) -> consent_pb2_grpc.ConsentServiceStub:
        """The consent service as the portal calls it for its subjects."""
        return consent_pb2_grpc.ConsentServiceStub(self.portal.channel)

    def inquiries(self, consent_id: str, code: str = PERSON) -> list[tuple[str, str, list[str]]]:
        """(caller, outcome, reasons) of the inquiries made under the consent, as its owner
        `code` lists them."""
        listed = self.consents.ListInquiries(
            consent_pb2.ListInquiriesRequest(consent_id=consent_id),
            metadata=self.subject_md(code),
            timeout=10,
        )
        return [(e.caller, e.outcome, list(e.reasons)) for e in listed.inquiries]

    def request(
        self, consent_token: str, *, subject: str = PERSON, agreement_id: str = AGREEMENT
    ) -> inquiry_pb2.AuthorizedQueryRequest:
        return inquiry_pb2.AuthorizedQueryRequest(
            query=inquiry_pb2.QueryRequest(
                subject_code=subject,
                purpose=PURPOSE,
                agreement_id=agreement_id,
                item_codes=["ADM.PUNISHMENT"],
            ),
            consent_token=consent_token,
        )

    def query(
        self,
        consent_token: str,
        channel: grpc.Channel | None = None,
        timeout: float = 10,
        request_id: str = "",
        *,
        access_token: str | None = None,
        **request: Any,
    ) -> common_pb2.QueryResponse:
        """A consented QueryAuthorized by the agency (on `channel`, if given; with
        `access_token`, if given, else a fresh one); `request` as `request` takes it."""
        md = metadata(access_token) if access_token is not None else self.md()
        extra = (("x-request-id", request_id),) if request_id else ()
        return self._stub(channel).QueryAuthorized(
            self.request(consent_token, **request), metadata=(*md, *extra), timeout=timeout
        )

    def query_future(self, consent_token: str, timeout: float = 20) -> grpc.Future:
        return self._stub(None).QueryAuthorized.future(
            self.request(consent_token), metadata=self.md(), timeout=timeout
        )

    def md(self) -> tuple[tuple[str, str], ...]:
        return metadata(self.h.token(self.agency))

    def _stub(self, channel: grpc.Channel | None) -> inquiry_pb2_grpc.InquiryServiceStub:
        return inquiry_pb2_grpc.InquiryServiceStub(channel or self.agency.channel)


def consented(h: Harness) -> Consented:
    """Registers the provider, the agency (its agreement with quotas no test loop reaches), the
    portal, and stores one record about PERSON."""
    provider = h.add_participant("hubei-amr", "providing-unit")
    agency = h.add_participant("zx-credit", "credit-agency")
    portal = h.add_participant("realname-portal", "identity-provider")
    make_agreement(
        h,
        agency,
        agreement_id=AGREEMENT,
        categories=("administrative_punishment",),
        purposes=(PURPOSE,),
        calls_per_day=1_000_000,
        records_per_day=1_000_000,
    )
    result = submit(h, provider, [punishment(provider, "seed-1", h.clock.now)])
    assert result.accepted == 1, result
    return Consented(h, provider, agency, portal)
