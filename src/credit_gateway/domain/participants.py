"""Participants: who may connect (DESIGN "Who calls it"), and whether they may act now."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from credit_gateway.errors import DomainError, PermissionDenied, Unauthenticated


class ParticipantKind(enum.StrEnum):
    NATIONAL_PLATFORM = "national-platform"
    PROVINCIAL_PLATFORM = "provincial-platform"
    CREDIT_AGENCY = "credit-agency"  # a licensed credit service establishment
    INDUSTRY_ASSOCIATION = "industry-association"
    GOVERNMENT_DEPARTMENT = "government-department"
    PROVIDING_UNIT = "providing-unit"
    IDENTITY_PROVIDER = "identity-provider"
    AUDITOR = "auditor"  # reads the audit log's entries (Art 32-33, 36); releases nothing


class ParticipantStatus(enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


PARTICIPANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # used with fullmatch


@dataclass(frozen=True, slots=True)
class Licence:
    number: str
    valid_until: datetime
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    kind: ParticipantKind
    org_code: str
    name: str
    status: ParticipantStatus
    scopes: frozenset[str]
    licence: Licence | None = None

    def __post_init__(self) -> None:
        if not PARTICIPANT_ID.fullmatch(self.id):
            raise DomainError(
                f"participant id {self.id!r} must match {PARTICIPANT_ID.pattern}",
                reason="PARTICIPANT_INVALID",
            )
        if self.kind is ParticipantKind.CREDIT_AGENCY and self.licence is None:
            raise DomainError(
                "a credit service establishment needs a licence", reason="PARTICIPANT_INVALID"
            )

    def ensure_may_act(self, now: datetime) -> None:
        """Raises PermissionDenied unless the participant may make any call at `now`."""
        if self.status is not ParticipantStatus.ACTIVE:
            raise PermissionDenied(
                f"participant {self.id} is suspended", reason="PARTICIPANT_SUSPENDED"
            )
        if self.kind is ParticipantKind.CREDIT_AGENCY:
            if self.licence is None or self.licence.revoked:
                raise PermissionDenied(f"licence of {self.id} is revoked", reason="LICENCE_REVOKED")
            if now >= self.licence.valid_until:
                raise PermissionDenied(f"licence of {self.id} expired", reason="LICENCE_EXPIRED")


@dataclass(frozen=True, slots=True)
class Standing:
    """The caller's standing, to be read on every call and never cached: the participant whose
    certificate carries the call, and the access token's id, which must not be revoked."""

    participant_id: str
    jti: str


def check_standing(participant: Participant | None, revoked: bool, now: datetime) -> Participant:
    """The verdict on a standing as read: the token was not revoked, its client exists and may
    act at `now`. Raises Unauthenticated or PermissionDenied with the reason."""
    if revoked:
        raise Unauthenticated("access token was revoked", reason="TOKEN_REVOKED")
    if participant is None:
        raise Unauthenticated("token names an unknown client", reason="TOKEN_INVALID")
    participant.ensure_may_act(now)
    return participant
