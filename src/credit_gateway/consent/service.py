"""The consent lifecycle (Art 19-20), called by subjects and grantees through ConsentService.

Every state change happens in one write transaction that locks the consent (or request) row,
checks the transition, writes the new state and an event; no status is cached anywhere, so the
next release transaction on any replica sees a revocation as soon as RevokeConsent returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import consents as store
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage import trust
from credit_gateway.consent import tokens as consent_tokens
from credit_gateway.crypto.jwks import ec_keys
from credit_gateway.crypto.signatures import verify_es256
from credit_gateway.domain.agreements import Operation
from credit_gateway.domain.catalog import DisclosureLevel
from credit_gateway.domain.consent import (
    Consent,
    ConsentRequest,
    ConsentStatus,
    ConsentTerms,
    RequestStatus,
    artefact_bytes,
    transition,
)
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.participants import ParticipantKind
from credit_gateway.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PeerError,
    PermissionDenied,
)
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.release import parse_subject

GRANTEE_KINDS = frozenset({ParticipantKind.CREDIT_AGENCY, ParticipantKind.INDUSTRY_ASSOCIATION})
EVIDENCE_SIGNATURE = "subject_signature"
EVIDENCE_REAL_NAME = "real_name_assertion"


@dataclass(frozen=True, slots=True)
class Granted:
    consent: Consent
    token: str


class ConsentService:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    # --- the subject's side ----------------------------------------------------------------
    def grant(
        self, subject_code: str, terms: ConsentTerms, signature: bytes, key_id: str
    ) -> Granted:
        gw = self.gateway
        now = gw.clock()
        kind, code = parse_subject(subject_code, now)
        with gw.db.transaction() as session:
            subject = record_store.ensure_subject(
                session, gw.envelope, gw.subject_lookup(code), code, kind, now
            )
            consent = self._grant(
                session, subject.id, code, subject.public_jwk, terms, signature, key_id, now
            )
        return Granted(consent, self._token(consent))

    def _grant(
        self,
        session: Session,
        subject_id: str,
        code: str,
        public_jwk: str | None,
        terms: ConsentTerms,
        signature: bytes,
        key_id: str,
        now: datetime,
    ) -> Consent:
        terms.validate(self.gateway.catalog.get(), now)
        self._check_grantee(session, terms, now)
        evidence = EVIDENCE_REAL_NAME
        if public_jwk is None and signature:
            # Stored unverified it would later look like proof that the subject signed.
            raise InvalidArgument.field(
                "subject_signature",
                "this subject has no registered key; send no signature",
                reason="SUBJECT_KEY_NOT_REGISTERED",
            )
        if public_jwk is not None:  # a registered key makes the subject's own signature mandatory
            if not signature:
                raise PermissionDenied(
                    "this subject must sign its consent", reason="SUBJECT_SIGNATURE_REQUIRED"
                )
            _verify_subject_signature(public_jwk, key_id, artefact_bytes(code, terms), signature)
            evidence = EVIDENCE_SIGNATURE
        consent = Consent(
            id=new_id("cns"),
            subject_id=subject_id,
            terms=terms,
            status=ConsentStatus.ACTIVE,
            uses=0,
            granted_at=now,
            status_changed_at=now,
            evidence=evidence,
        )
        store.insert_consent(
            session, self.gateway.envelope, consent, artefact_bytes(code, terms), signature or None
        )
        return consent

    def _check_grantee(self, session: Session, terms: ConsentTerms, now: datetime) -> None:
        """The grantee is a registered establishment or association with an agreement in force
        that allows authorized inquiry (Art 20 para 2)."""
        grantee = trust.get_participant(session, terms.grantee)
        eligible = grantee is not None and grantee.kind in GRANTEE_KINDS
        try:
            if grantee is not None:
                grantee.ensure_may_act(now)  # active, and its licence valid (Art 20 para 2)
        except PermissionDenied:
            eligible = False
        if not eligible:
            raise InvalidArgument.field(
                "terms.grantee",
                "not a licensed credit service establishment or industry association in good "
                "standing",
                reason="GRANTEE_NOT_ELIGIBLE",
            )
        for agreement, status in agreement_store.list_agreements(
            session, counterparty=terms.grantee
        ):
            if (
                status.value == "active"
                and agreement.valid_from <= now < agreement.valid_until
                and Operation.INQUIRY in agreement.operations
                and DisclosureLevel.AUTHORIZED in agreement.levels
            ):
                return
        raise InvalidArgument.field(
            "terms.grantee",
            "has no agreement in force for authorized inquiry",
            reason="GRANTEE_NOT_ELIGIBLE",
        )

    def change(self, subject_code: str, consent_id: str, target: ConsentStatus) -> Consent:
        gw = self.gateway
        now = gw.clock()
        with gw.db.transaction() as session:
            subject_id = self._require_subject(session, subject_code, now)
            consent = self._own_consent(session, subject_id, consent_id, lock=True)
            current = consent.effective_status(now)
            if current is not consent.status:  # lapsed in time: record that first
                store.set_status(session, consent, current, "gateway", now)
            transition(current, target)
            store.set_status(session, consent, target, subject_id, now)
            return store.get_consent(session, consent_id) or consent

    def get(self, subject_code: str, consent_id: str) -> Consent:
        with self.gateway.db.transaction(write=False) as session:
            return self._own_consent(
                session, self._subject_id(session, subject_code, self.gateway.clock()), consent_id
            )

    def list_consents(self, subject_code: str, statuses: list[ConsentStatus]) -> list[Consent]:
        with self.gateway.db.transaction(write=False) as session:
            subject_id = self._subject_id(
                session, subject_code, self.gateway.clock(), required=False
            )
            return store.list_consents(session, subject_id, statuses) if subject_id else []

    def inquiries(self, subject_code: str, consent_id: str, limit: int) -> list[dict[str, object]]:
        with self.gateway.db.transaction(write=False) as session:
            subject_id = self._subject_id(
                session, subject_code, self.gateway.clock(), required=False
            )
            if subject_id is None:
                return []
            if consent_id:  # the subject's own consent, or NOT_FOUND
                self._own_consent(session, subject_id, consent_id)
            return audit_store.subject_entries(
                session, subject_id, consent_id or None, min(max(limit, 1), 1000)
            )

    def requests(self, subject_code: str, statuses: list[RequestStatus]) -> list[ConsentRequest]:
        with self.gateway.db.transaction(write=False) as session:
            subject_id = self._subject_id(
                session, subject_code, self.gateway.clock(), required=False
            )
            return store.list_requests(session, subject_id, statuses) if subject_id else []

    def approve(self, subject_code: str, request_id: str, signature: bytes, key_id: str) -> Granted:
        gw = self.gateway
        now = gw.clock()
        kind, code = parse_subject(subject_code, now)
        with gw.db.transaction() as session:
            subject = record_store.ensure_subject(
                session, gw.envelope, gw.subject_lookup(code), code, kind, now
            )
            request = self._own_request(session, subject.id, request_id)
            consent = self._grant(
                session, subject.id, code, subject.public_jwk, request.terms, signature, key_id, now
            )
            store.decide_request(
                session, request, RequestStatus.APPROVED, subject.id, now, consent.id
            )
        return Granted(consent, self._token(consent))

    def reject(self, subject_code: str, request_id: str) -> ConsentRequest:
        gw = self.gateway
        now = gw.clock()
        with gw.db.transaction() as session:
            subject_id = self._require_subject(session, subject_code, now)
            request = self._own_request(session, subject_id, request_id)
            store.decide_request(session, request, RequestStatus.REJECTED, subject_id, now)
            return store.get_request(session, request_id) or request

    # --- the grantee's side ----------------------------------------------------------------
    def request(self, grantee_id: str, subject_code: str, terms: ConsentTerms) -> ConsentRequest:
        gw = self.gateway
        now = gw.clock()
        kind, code = parse_subject(subject_code, now)
        if terms.grantee != grantee_id:
            raise InvalidArgument.field(
                "terms.grantee", "a grantee asks for consent for itself only"
            )
        with gw.db.transaction() as session:
            terms.validate(gw.catalog.get(), now)
            self._check_grantee(session, terms, now)
            subject = record_store.ensure_subject(
                session, gw.envelope, gw.subject_lookup(code), code, kind, now
            )
            request_id = new_id("crq")
            store.insert_request(session, request_id, subject.id, terms, now)
            request = store.get_request(session, request_id)
        assert request is not None
        return request

    def token_for_grantee(self, grantee_id: str, consent_id: str) -> Granted:
        with self.gateway.db.transaction(write=False) as session:
            consent = store.get_consent(session, consent_id)
        if consent is None or consent.terms.grantee != grantee_id:
            raise NotFound("no such consent for this grantee", reason="CONSENT_NOT_FOUND")
        return Granted(consent, self._token(consent))

    def grantee_consent(self, grantee_id: str, consent_id: str) -> Consent | None:
        with self.gateway.db.transaction(write=False) as session:
            consent = store.get_consent(session, consent_id)
        return consent if consent is not None and consent.terms.grantee == grantee_id else None

    def grantee_request(self, grantee_id: str, request_id: str) -> ConsentRequest | None:
        with self.gateway.db.transaction(write=False) as session:
            request = store.get_request(session, request_id)
        return request if request is not None and request.terms.grantee == grantee_id else None

    def subject_code(self, subject_id: str) -> str:
        """The code of a subject the grantee deals with (it named it when it asked)."""
        with self.gateway.db.transaction(write=False) as session:
            return record_store.subject_code(session, self.gateway.envelope, subject_id)

    # --- helpers ---------------------------------------------------------------------------
    def _token(self, consent: Consent) -> str:
        return consent_tokens.issue(
            self.gateway.keyring, self.gateway.settings.effective_issuer, consent
        )

    def _subject_id(
        self, session: Session, subject_code: str, now: datetime, *, required: bool = True
    ) -> str | None:
        _, code = parse_subject(subject_code, now)
        subject = record_store.find_subject(session, self.gateway.subject_lookup(code))
        if subject is None and required:
            raise NotFound("no such consent", reason="CONSENT_NOT_FOUND")
        return None if subject is None else subject.id

    def _require_subject(self, session: Session, subject_code: str, now: datetime) -> str:
        subject_id = self._subject_id(session, subject_code, now)
        assert subject_id is not None  # required=True raised NotFound otherwise
        return subject_id

    @staticmethod
    def _own_consent(
        session: Session, subject_id: str | None, consent_id: str, *, lock: bool = False
    ) -> Consent:
        consent = store.get_consent(session, consent_id, lock=lock)
        if consent is None or consent.subject_id != subject_id:  # another's consent: as if absent
            raise NotFound("no such consent", reason="CONSENT_NOT_FOUND")
        return consent

    @staticmethod
    def _own_request(session: Session, subject_id: str | None, request_id: str) -> ConsentRequest:
        request = store.get_request(session, request_id, lock=True)
        if request is None or request.subject_id != subject_id:
            raise NotFound("no such consent request", reason="CONSENT_REQUEST_NOT_FOUND")
        if request.status is not RequestStatus.PENDING:
            raise FailedPrecondition(
                f"request is {request.status.value}", reason="CONSENT_REQUEST_DECIDED"
            )
        return request


def _verify_subject_signature(public_jwk: str, key_id: str, data: bytes, signature: bytes) -> None:
    keys = ec_keys({"keys": [json.loads(public_jwk)]})
    public = keys.get(key_id) if key_id else next(iter(keys.values()), None)
    if public is None:
        raise PermissionDenied(
            "signed with a key the subject has not registered", reason="SUBJECT_SIGNATURE_INVALID"
        )
    try:
        verify_es256(public, data, signature, what="consent")
    except PeerError as exc:
        raise PermissionDenied(
            "the subject's signature does not verify over the consent artefact",
            reason="SUBJECT_SIGNATURE_INVALID",
        ) from exc
