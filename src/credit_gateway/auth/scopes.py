"""Which scope each gRPC method needs, and who may hold it: the one table the interceptor reads.

A method missing from METHOD_SCOPES is refused (fail closed), except the PUBLIC ones, which still
need a mutual-TLS client certificate from our CA but no token. A rule names the kind of
principal the method serves; a few serve subjects as well as participants (`also`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from credit_gateway.domain.participants import ParticipantKind as PK
from credit_gateway.errors import PermissionDenied


class PrincipalKind(enum.Enum):
    PARTICIPANT = "participant"
    SUBJECT = "subject"


@dataclass(frozen=True, slots=True)
class MethodRule:
    scope: str
    principal: PrincipalKind
    # Other kinds of principal the method serves too. One rule per method, so a method open to
    # participants and subjects alike (the audit log's proofs) is one row of the table.
    also: frozenset[PrincipalKind] = frozenset()

    @property
    def principals(self) -> frozenset[PrincipalKind]:
        return self.also | {self.principal}

    def admit(self, kind: PrincipalKind, scopes: frozenset[str]) -> None:
        """Raises PermissionDenied unless a principal of ``kind`` holding ``scopes`` may call."""
        if kind not in self.principals:
            who = "a credit subject" if self.principal is PrincipalKind.SUBJECT else "a participant"
            raise PermissionDenied(f"this method is for {who}", reason="WRONG_PRINCIPAL")
        if self.scope not in scopes:
            raise PermissionDenied(f"token lacks scope {self.scope}", reason="SCOPE_MISSING")


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
# AuditService. Checkpoints and proofs carry no personal data: every kind that can hold a token
# may have them, subjects too (for proofs of their own entries). The entries themselves name
# callers, purposes and subjects' keyed hashes: auditors only.
AUDIT_PROOF = "audit.proof"
AUDIT_READ = "audit.read"
# ExchangeService, for the national and provincial platforms (Art 20 para 3, 21): each under an
# exchange agreement that names its operation (push, bulk_pull, change_feed).
EXCHANGE_PUSH = "exchange.push"
EXCHANGE_PULL = "exchange.pull"
EXCHANGE_FEED = "exchange.feed"
_EXCHANGE = frozenset({EXCHANGE_PUSH, EXCHANGE_PULL, EXCHANGE_FEED})

SUBJECT_SCOPES = frozenset({SUBJECT_SELF, SUBJECT_CONSENT, AUDIT_PROOF})

# Scopes each kind of participant may be registered with (DESIGN "Who calls it").
_EVERY = frozenset({DISCOVERY, AUDIT_PROOF})
SCOPES_BY_KIND: Mapping[PK, frozenset[str]] = {
    PK.NATIONAL_PLATFORM: _EVERY | _EXCHANGE | {INQUIRY_OPEN, SUBMISSION},
    PK.PROVINCIAL_PLATFORM: _EVERY | _EXCHANGE | {INQUIRY_OPEN, SUBMISSION},
    PK.CREDIT_AGENCY: _EVERY | {INQUIRY_OPEN, INQUIRY_AUTHORIZED, CONSENT_GRANTEE},
    PK.INDUSTRY_ASSOCIATION: _EVERY | {INQUIRY_OPEN, INQUIRY_AUTHORIZED, CONSENT_GRANTEE},
    PK.GOVERNMENT_DEPARTMENT: _EVERY | {INQUIRY_OPEN, SHARING_GOVERNMENT},
    PK.PROVIDING_UNIT: _EVERY | {SUBMISSION},
    # A real-name portal acts for subjects, who hold no agreement: nothing to discover. It gets
    # no token of its own (jwt-bearer only), so its subjects' tokens carry audit.proof instead.
    PK.IDENTITY_PROVIDER: frozenset(),
    # Reads the log; the catalog tells it what the entries' items and purposes are.
    PK.AUDITOR: _EVERY | {AUDIT_READ},
}

_P = PrincipalKind.PARTICIPANT
_S = PrincipalKind.SUBJECT
_INQ = "/credit_gateway.v1.InquiryService/"
_SUB = "/credit_gateway.v1.SubmissionService/"
_CON = "/credit_gateway.v1.ConsentService/"
_DIS = "/credit_gateway.v1.DiscoveryService/"
_AUD = "/credit_gateway.v1.AuditService/"
_EXC = "/credit_gateway.v1.ExchangeService/"
_OBJ = "/credit_gateway.v1.ObjectionService/"
_ARC = "/credit_gateway.v1.ArchiveService/"

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
        _AUD + name: MethodRule(AUDIT_PROOF, _P, also=frozenset({_S}))
        for name in ("GetCheckpoint", "GetInclusionProof", "GetConsistencyProof")
    },
    _AUD + "GetEntries": MethodRule(AUDIT_READ, _P),
    _EXC + "PushRecords": MethodRule(EXCHANGE_PUSH, _P),
    _EXC + "PullRecords": MethodRule(EXCHANGE_PULL, _P),
    _EXC + "SubscribeChanges": MethodRule(EXCHANGE_FEED, _P),
    # Art 29-31: the subject's rights over its own records (the scope of QueryOwn, which names
    # them), the providing unit's answers on records it provided (the scope that provided them).
    **{
        _OBJ + name: MethodRule(SUBJECT_SELF, _S)
        for name in ("FileObjection", "GetObjection", "ListObjections")
    },
    _OBJ + "ListObjectionQueue": MethodRule(SUBMISSION, _P),
    _OBJ + "AnswerObjection": MethodRule(SUBMISSION, _P),
    _ARC + "SubmitRestoration": MethodRule(SUBMISSION, _P),
    _ARC + "ApplyDeletion": MethodRule(SUBJECT_SELF, _S),
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
