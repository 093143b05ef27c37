"""The consent lifecycle (Art 19-20), called by subjects and grantees through ConsentService.

The rules are consent/lifecycle.py, without I/O: each change is a flow that names its reads,
decides on what was read and returns its writes, and each question a pure function of one read.
This module gives them their inputs (the subject code parsed and looked up, the catalog, the
clock, the subject's signature, and a minor's guardian's, checked with the signer's registered
key) and runs them on the SQL store (storage/consent_store.py), one transaction per operation;
it issues the token of a consent once that is committed. No status is cached anywhere, so the
next release transaction on any replica sees a revocation as soon as RevokeConsent returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from credit_gateway.adapters.storage.consent_store import SqlConsentStore
from credit_gateway.consent import lifecycle
from credit_gateway.consent import tokens as consent_tokens
from credit_gateway.consent.lifecycle import Guardian, Reads, Signature
from credit_gateway.crypto.jwks import ec_keys
from credit_gateway.crypto.signatures import verify_es256
from credit_gateway.domain.consent import (
    Consent,
    ConsentRequest,
    ConsentStatus,
    ConsentTerms,
    RequestStatus,
)
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.release import Subject, parse_subject
from credit_gateway.errors import InvalidArgument, NotFound, PeerError
from credit_gateway.runtime.gateway import Gateway


@dataclass(frozen=True, slots=True)
class Granted:
    consent: Consent
    token: str


@dataclass(frozen=True, slots=True)
class GuardianGiven:
    """A guardian's authorisation as the call gave it: its code, unparsed, and its signature."""

    code: str
    signature: Signature


class ConsentService:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = SqlConsentStore(gateway.db, lambda: gateway.envelope, gateway.audit.mac_key)

    # --- the subject's side ----------------------------------------------------------------
    def grant(
        self,
        subject_code: str,
        terms: ConsentTerms,
        signature: bytes,
        key_id: str,
        guardian: GuardianGiven | None = None,
    ) -> Granted:
        gw = self.gateway
        now = gw.clock()
        subject = self._subject(subject_code, now)
        flow = lifecycle.Grant(
            subject,
            terms,
            Signature(signature, key_id),
            gw.catalog.get(),
            now,
            signed_by_subject,
            self._guardian(guardian, now),
        )
        return self._granted(lifecycle.run(flow, self.store))

    def approve(
        self,
        subject_code: str,
        request_id: str,
        signature: bytes,
        key_id: str,
        guardian: GuardianGiven | None = None,
    ) -> Granted:
        gw = self.gateway
        now = gw.clock()
        subject = self._subject(subject_code, now)
        flow = lifecycle.Approve(
            subject,
            request_id,
            Signature(signature, key_id),
            gw.catalog.get(),
            now,
            signed_by_subject,
            self._guardian(guardian, now),
        )
        return self._granted(lifecycle.run(flow, self.store))

    def reject(self, subject_code: str, request_id: str) -> ConsentRequest:
        now = self.gateway.clock()
        flow = lifecycle.Reject(self._subject(subject_code, now), request_id, now)
        return lifecycle.run(flow, self.store)

    def change(self, subject_code: str, consent_id: str, target: ConsentStatus) -> Consent:
        now = self.gateway.clock()
        flow = lifecycle.Change(self._subject(subject_code, now), consent_id, target, now)
        return lifecycle.run(flow, self.store)

    def get(self, subject_code: str, consent_id: str) -> Consent:
        return lifecycle.own_consent(self._read_own(subject_code, consent_id=consent_id))

    def list_consents(self, subject_code: str, statuses: list[ConsentStatus]) -> list[Consent]:
        return list(self._read_own(subject_code, consents=tuple(statuses)).consents)

    def inquiries(self, subject_code: str, consent_id: str, limit: int) -> list[dict[str, object]]:
        state = self._read_own(
            subject_code, consent_id=consent_id or None, inquiries=lifecycle.inquiry_limit(limit)
        )
        return lifecycle.subject_inquiries(state, consent_id or None)

    def requests(self, subject_code: str, statuses: list[RequestStatus]) -> list[ConsentRequest]:
        return list(self._read_own(subject_code, requests=tuple(statuses)).requests)

    # --- the grantee's side ----------------------------------------------------------------
    def request(
        self,
        grantee_id: str,
        subject_code: str,
        terms: ConsentTerms,
        kind: SubjectKind | None = None,
    ) -> tuple[ConsentRequest, SubjectKind]:
        """The request made, and the kind of subject it was made of (as asked, or the one kind
        the code can be)."""
        gw = self.gateway
        now = gw.clock()
        subject = self._subject(subject_code, now, kind)
        flow = lifecycle.Ask(grantee_id, subject, terms, gw.catalog.get(), now)
        return lifecycle.run(flow, self.store), subject.kind

    def token_for_grantee(self, grantee_id: str, consent_id: str) -> Granted:
        consent = self.grantee_consent(grantee_id, consent_id)
        if consent is None:
            raise NotFound("no such consent for this grantee", reason="CONSENT_NOT_FOUND")
        return self._granted(consent)

    def grantee_consent(self, grantee_id: str, consent_id: str) -> Consent | None:
        found = self.store.read(Reads(consent_id=consent_id)).consent
        return lifecycle.for_grantee(found, grantee_id)

    def grantee_request(self, grantee_id: str, request_id: str) -> ConsentRequest | None:
        found = self.store.read(Reads(request_id=request_id)).request
        return lifecycle.for_grantee(found, grantee_id)

    def subject_of(self, subject_id: str) -> tuple[str, SubjectKind]:
        """The code and kind of a subject the grantee deals with (it named it when it asked)."""
        state = self.store.read(Reads(subject_id=subject_id))
        # The store found the row: events name subjects that exist.
        assert state.subject_code is not None
        assert state.subject_kind is not None
        return state.subject_code, state.subject_kind

    # --- helpers ---------------------------------------------------------------------------
    def _subject(
        self,
        subject_code: str,
        now: datetime,
        kind: SubjectKind | None = SubjectKind.NATURAL_PERSON,
    ) -> Subject:
        """The subject parsed as `kind`. The subject's own calls name it by the code its
        real-name portal asserted, which names a person: NATURAL_PERSON, unless said."""
        parsed_kind, code = parse_subject(subject_code, now, kind)
        return Subject(parsed_kind, code, self.gateway.subject_lookup(code))

    def _guardian(self, given: GuardianGiven | None, now: datetime) -> Guardian | None:
        """The guardian named, its code read as a natural person's (a guardian is one)."""
        if given is None:
            return None
        try:
            subject = self._subject(given.code, now)
        except InvalidArgument as error:  # named as the guardian's code, not the subject's
            (violation,) = error.violations
            raise InvalidArgument.field(
                "guardian.subject_code", violation.description, reason=error.reason
            ) from error
        return Guardian(subject, given.signature)

    def _read_own(
        self,
        subject_code: str,
        *,
        consent_id: str | None = None,
        consents: tuple[ConsentStatus, ...] | None = None,
        requests: tuple[RequestStatus, ...] | None = None,
        inquiries: int = 0,
    ) -> lifecycle.ReadState:
        """One read of what the subject asks about its own consents."""
        subject = self._subject(subject_code, self.gateway.clock())
        reads = Reads(
            subject_lookup=subject.lookup,
            consent_id=consent_id,
            consents=consents,
            requests=requests,
            inquiries=inquiries,
        )
        state = self.store.read(reads)
        lifecycle.stored_as(state, subject)  # a company on record under the code is not its
        return state

    def _granted(self, consent: Consent) -> Granted:
        gw = self.gateway
        return Granted(
            consent, consent_tokens.issue(gw.keyring, gw.settings.effective_issuer, consent)
        )


def signed_by_subject(public_jwk: str, key_id: str, data: bytes, signature: bytes) -> bool:
    """lifecycle.SignatureCheck with the signer's registered JWK (ES256 over the artefact): the
    subject's, or a minor's guardian's."""
    keys = ec_keys({"keys": [json.loads(public_jwk)]})
    public = keys.get(key_id) if key_id else next(iter(keys.values()), None)
    if public is None:
        return False
    try:
        verify_es256(public, data, signature, what="consent")
    except PeerError:
        return False
    return True
