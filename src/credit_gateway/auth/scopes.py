"""Which scope each gRPC method needs, and who may hold it: the one table the interceptor reads.

A method missing from METHOD_SCOPES is refused (fail closed), except the PUBLIC ones, which still
need a mutual-TLS client certificate from our CA but no token.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from credit_gateway.domain.participants import ParticipantKind as PK


class PrincipalKind(enum.Enum):
    PARTICIPANT = "participant"
    SUBJECT = "subject"


@dataclass(frozen=True, slots=True)
class MethodRule:
    scope: str
    principal: PrincipalKind


INQUIRY_OPEN = "inquiry.open"
INQUIRY_AUTHORIZED = "inquiry.authorized"
SHARING_GOVERNMENT = "sharing.government"
SUBMISSION = "submission.write"
CONSENT_GRANTEE = "consent.grantee"
SUBJECT_SELF = "subject.self"
SUBJECT_CONSENT = "subject.consent"
# DiscoveryService: the catalog in force and the caller's own agreements. A scope of its own,
# not one of the release scopes: a client that only reads what it may ask for (a platform's
# configuration job, a providing unit's submitter) is given no release or submission right.
DISCOVERY = "discovery.read"

SUBJECT_SCOPES = frozenset({SUBJECT_SELF, SUBJECT_CONSENT})

# Scopes each kind of participant may be registered with (DESIGN "Who calls it").
SCOPES_BY_KIND: Mapping[PK, frozenset[str]] = {
    PK.NATIONAL_PLATFORM: frozenset({INQUIRY_OPEN, SUBMISSION, DISCOVERY}),
    PK.PROVINCIAL_PLATFORM: frozenset({INQUIRY_OPEN, SUBMISSION, DISCOVERY}),
    PK.CREDIT_AGENCY: frozenset({INQUIRY_OPEN, INQUIRY_AUTHORIZED, CONSENT_GRANTEE, DISCOVERY}),
    PK.INDUSTRY_ASSOCIATION: frozenset(
        {INQUIRY_OPEN, INQUIRY_AUTHORIZED, CONSENT_GRANTEE, DISCOVERY}
    ),
    PK.GOVERNMENT_DEPARTMENT: frozenset({INQUIRY_OPEN, SHARING_GOVERNMENT, DISCOVERY}),
    PK.PROVIDING_UNIT: frozenset({SUBMISSION, DISCOVERY}),
    # A real-name portal acts for subjects, who hold no agreement: nothing to discover.
    PK.IDENTITY_PROVIDER: frozenset(),
}

_P = PrincipalKind.PARTICIPANT
_S = PrincipalKind.SUBJECT
_INQ = "/credit_gateway.v1.InquiryService/"
_SUB = "/credit_gateway.v1.SubmissionService/"
_CON = "/credit_gateway.v1.ConsentService/"
_DIS = "/credit_gateway.v1.DiscoveryService/"

METHOD_SCOPES: Mapping[str, MethodRule] = {
    _INQ + "QueryOpen": MethodRule(INQUIRY_OPEN, _P),
    _INQ + "QueryAuthorized": MethodRule(INQUIRY_AUTHORIZED, _P),
    _INQ + "ShareGovernment": MethodRule(SHARING_GOVERNMENT, _P),
    _INQ + "QueryOwn": MethodRule(SUBJECT_SELF, _S),
    _SUB + "SubmitRecords": MethodRule(SUBMISSION, _P),
    _CON + "RequestConsent": MethodRule(CONSENT_GRANTEE, _P),
    _CON + "GetConsentToken": MethodRule(CONSENT_GRANTEE, _P),
    _CON + "WatchConsents": MethodRule(CONSENT_GRANTEE, _P),
    _DIS + "GetCatalog": MethodRule(DISCOVERY, _P),
    _DIS + "ListAgreements": MethodRule(DISCOVERY, _P),
    **{
        _CON + name: MethodRule(SUBJECT_CONSENT, _S)
        for name in (
            "GrantConsent",
            "RevokeConsent",
            "PauseConsent",
            "ResumeConsent",
            "GetConsent",
            "ListConsents",
            "ListInquiries",
            "ListConsentRequests",
            "ApproveConsentRequest",
            "RejectConsentRequest",
        )
    },
}

PUBLIC_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)


def parse_scope(scope: str) -> frozenset[str]:
    return frozenset(scope.split())
