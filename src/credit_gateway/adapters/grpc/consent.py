"""ConsentService: the subject's consents and requests, the grantee's requests, tokens and watch."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc

from credit_gateway.adapters.grpc import convert
from credit_gateway.adapters.grpc.interceptor import StandingCheck, current_call
from credit_gateway.adapters.grpc.v1 import consent_pb2, consent_pb2_grpc
from credit_gateway.adapters.grpc.watch import ConsentEventHub
from credit_gateway.consent.lifecycle import Signature
from credit_gateway.consent.service import ConsentService, Granted, GuardianGiven
from credit_gateway.domain.consent import ConsentEvent, ConsentStatus
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.runtime.blocking import Blocking

_Ctx = grpc.aio.ServicerContext[Any, Any]
RECHECK_SECONDS = 2.0


class ConsentServicer(consent_pb2_grpc.ConsentServiceServicer):
    def __init__(self, service: ConsentService, blocking: Blocking, hub: ConsentEventHub) -> None:
        self.service = service
        self.gateway = service.gateway
        self.blocking = blocking
        self.hub = hub
        self.standing = StandingCheck(self.gateway)

    # --- subject ---------------------------------------------------------------------------
    async def GrantConsent(
        self, request: consent_pb2.GrantConsentRequest, context: _Ctx
    ) -> consent_pb2.GrantConsentResponse:
        subject = current_call().principal.id
        terms = convert.terms_from_pb(request.terms)
        granted = await self.blocking.call(
            self.service.grant,
            subject,
            terms,
            request.subject_signature,
            request.subject_key_id,
            _guardian(request),
        )
        return self._granted(granted, subject)

    async def RevokeConsent(
        self, request: consent_pb2.ConsentRef, context: _Ctx
    ) -> consent_pb2.Consent:
        return await self._change(request, ConsentStatus.REVOKED)

    async def PauseConsent(
        self, request: consent_pb2.ConsentRef, context: _Ctx
    ) -> consent_pb2.Consent:
        return await self._change(request, ConsentStatus.PAUSED)

    async def ResumeConsent(
        self, request: consent_pb2.ConsentRef, context: _Ctx
    ) -> consent_pb2.Consent:
        return await self._change(request, ConsentStatus.ACTIVE)

    async def GetConsent(
        self, request: consent_pb2.ConsentRef, context: _Ctx
    ) -> consent_pb2.Consent:
        subject = current_call().principal.id
        consent = await self.blocking.call(
            self.service.get, subject, _required(request.consent_id, "consent_id")
        )
        return convert.consent_to_pb(consent, subject, self._now())

    async def ListConsents(
        self, request: consent_pb2.ListConsentsRequest, context: _Ctx
    ) -> consent_pb2.ListConsentsResponse:
        subject = current_call().principal.id
        consents = await self.blocking.call(
            self.service.list_consents, subject, convert.consent_statuses(list(request.statuses))
        )
        now = self._now()
        return consent_pb2.ListConsentsResponse(
            consents=[convert.consent_to_pb(c, subject, now) for c in consents]
        )

    async def ListInquiries(
        self, request: consent_pb2.ListInquiriesRequest, context: _Ctx
    ) -> consent_pb2.ListInquiriesResponse:
        subject = current_call().principal.id
        entries = await self.blocking.call(
            self.service.inquiries, subject, request.consent_id, request.limit or 100
        )
        return consent_pb2.ListInquiriesResponse(inquiries=[_inquiry(e) for e in entries])

    async def ListConsentRequests(
        self, request: consent_pb2.ListConsentRequestsRequest, context: _Ctx
    ) -> consent_pb2.ListConsentRequestsResponse:
        subject = current_call().principal.id
        found = await self.blocking.call(
            self.service.requests, subject, convert.request_statuses(list(request.statuses))
        )
        answer = consent_pb2.ListConsentRequestsResponse(
            requests=[convert.request_to_pb(r, subject) for r in found]
        )
        for pb in answer.requests:  # the subject's own: a person (a portal asserts persons)
            pb.subject_kind = convert.subject_kind_to_pb(SubjectKind.NATURAL_PERSON)
        return answer

    async def ApproveConsentRequest(
        self, request: consent_pb2.ApproveConsentRequestRequest, context: _Ctx
    ) -> consent_pb2.GrantConsentResponse:
        subject = current_call().principal.id
        granted = await self.blocking.call(
            self.service.approve,
            subject,
            _required(request.request_id, "request_id"),
            request.subject_signature,
            request.subject_key_id,
            _guardian(request),
        )
        return self._granted(granted, subject)

    async def RejectConsentRequest(
        self, request: consent_pb2.ConsentRequestRef, context: _Ctx
    ) -> consent_pb2.ConsentRequest:
        subject = current_call().principal.id
        rejected = await self.blocking.call(
            self.service.reject, subject, _required(request.request_id, "request_id")
        )
        return convert.request_to_pb(rejected, subject)

    # --- grantee ---------------------------------------------------------------------------
    async def RequestConsent(
        self, request: consent_pb2.RequestConsentRequest, context: _Ctx
    ) -> consent_pb2.ConsentRequest:
        grantee = current_call().client.id
        terms = convert.terms_from_pb(request.terms, grantee=grantee)
        asked = convert.subject_kind(request.subject_kind)
        made, kind = await self.blocking.call(
            self.service.request, grantee, request.subject_code, terms, asked
        )
        answer = convert.request_to_pb(made, request.subject_code)
        answer.subject_kind = convert.subject_kind_to_pb(kind)
        return answer

    async def GetConsentToken(
        self, request: consent_pb2.ConsentRef, context: _Ctx
    ) -> consent_pb2.ConsentToken:
        granted = await self.blocking.call(
            self.service.token_for_grantee,
            current_call().client.id,
            _required(request.consent_id, "consent_id"),
        )
        return _token(granted)

    async def WatchConsents(
        self, request: consent_pb2.WatchConsentsRequest, context: _Ctx
    ) -> AsyncIterator[consent_pb2.ConsentEvent]:
        call = current_call()
        grantee = call.client.id
        checked = time.monotonic()
        async with self.hub.subscribe(grantee) as events:
            while True:
                event = await events.next(RECHECK_SECONDS)
                # A watch may run for hours: the caller's standing is checked again as it runs.
                if time.monotonic() - checked >= RECHECK_SECONDS:
                    await self.standing.recheck(self.blocking, call)
                    checked = time.monotonic()
                if event is not None:
                    pb = await self.blocking.stream(self._event, grantee, event)
                    if pb is not None:
                        yield pb

    # --- helpers ---------------------------------------------------------------------------
    async def _change(
        self, request: consent_pb2.ConsentRef, target: ConsentStatus
    ) -> consent_pb2.Consent:
        subject = current_call().principal.id
        consent = await self.blocking.call(
            self.service.change, subject, _required(request.consent_id, "consent_id"), target
        )
        return convert.consent_to_pb(consent, subject, self._now())

    def _granted(self, granted: Granted, subject: str) -> consent_pb2.GrantConsentResponse:
        return consent_pb2.GrantConsentResponse(
            consent=convert.consent_to_pb(granted.consent, subject, self._now()),
            token=_token(granted),
        )

    def _event(self, grantee: str, event: ConsentEvent) -> consent_pb2.ConsentEvent | None:
        if event.request_id and not (event.consent_id and event.to_status != "approved"):
            found = self.service.grantee_request(grantee, event.request_id)
            if found is not None:
                code, kind = self.service.subject_of(found.subject_id)
                pb = convert.request_to_pb(found, code)
                pb.subject_kind = convert.subject_kind_to_pb(kind)
                return consent_pb2.ConsentEvent(request=pb)
        if event.consent_id:
            consent = self.service.grantee_consent(grantee, event.consent_id)
            if consent is not None:
                return consent_pb2.ConsentEvent(
                    consent=convert.consent_to_pb(
                        consent, self._code(consent.subject_id), self._now()
                    )
                )
        return None

    def _code(self, subject_id: str) -> str:
        return self.service.subject_of(subject_id)[0]

    def _now(self) -> datetime:
        return self.gateway.clock()


def _required(value: str, field: str) -> str:
    """A consent or request id: the gateway's own ids are at most 40 characters."""
    return convert.identifier(value, field, max_length=40)


def _guardian(
    request: consent_pb2.GrantConsentRequest | consent_pb2.ApproveConsentRequestRequest,
) -> GuardianGiven | None:
    """The guardian the call names, if it names one (a message set, even an empty one)."""
    if not request.HasField("guardian"):
        return None
    given = request.guardian
    return GuardianGiven(given.subject_code, Signature(given.signature, given.key_id))


def _token(granted: Granted) -> consent_pb2.ConsentToken:
    return consent_pb2.ConsentToken(
        consent_id=granted.consent.id,
        token=granted.token,
        expires_at=convert.to_timestamp(granted.consent.terms.valid_until),
    )


def _inquiry(entry: dict[str, object]) -> consent_pb2.InquiryEntry:
    def strings(key: str) -> list[str]:
        value = entry.get(key) or []
        return [str(v) for v in value] if isinstance(value, list) else []

    at = datetime.fromisoformat(str(entry["at"]))
    leaf_index = entry.get("leaf_index")
    pb = consent_pb2.InquiryEntry(
        inquiry_id=str(entry["id"]),
        caller=str(entry["caller"]),
        method=str(entry["method"]),
        purpose=str(entry["purpose"]),
        item_codes=strings("items"),
        outcome=str(entry["outcome"]),
        reasons=strings("reasons"),
        consent_id=str(entry.get("consent") or ""),
        agreement_id=str(entry.get("agreement") or ""),
        at=convert.to_timestamp(at),
        released_count=len(strings("released")),
    )
    if isinstance(leaf_index, int):  # unset until the integrator placed it
        pb.leaf_index = leaf_index
    return pb
