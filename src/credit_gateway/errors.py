"""The gateway's errors, grouped by who is at fault (STYLE lesson 6).

    GatewayError
    ├── CallerError             the caller's fault: retrying the same call cannot succeed
    │   ├── InvalidArgument     malformed input; carries field violations
    │   │   └── DomainError     a domain value refused its arguments (agreement, participant, time)
    │   │       ├── IdentifierError  domain/identifiers.py: a USCC or resident id broke `rule`
    │   │       ├── CanonicalError   domain/canonical.py: not strict JSON, or not canonicalisable
    │   │       ├── CatalogError     domain/catalog.py: an invalid catalog, item or purpose
    │   │       ├── ProofError       domain/merkle.py: a Merkle proof that does not verify
    │   │       ├── EvidenceError    domain/evidence.py: an evidence bundle that does not hold
    │   │       └── WitnessRefusal   domain/witness.py: a checkpoint a witness will not cosign
    │   ├── Unauthenticated     no or bad credentials (terse to the caller, detailed in the log)
    │   ├── PermissionDenied    authenticated, but not allowed (scope, agreement, consent, policy)
    │   │   └── ConsentTokenError    consent/tokens.py: a consent token refused
    │   ├── NotFound
    │   ├── AlreadyExists
    │   ├── FailedPrecondition  the state of things forbids it (e.g. a revoked consent resumed)
    │   ├── ResourceExhausted   a quota or a server limit is used up
    │   └── DeadlineExceeded    a stream stayed idle or open longer than the server allows
    ├── PeerError               the other party's artefact is bad (signature, tampering)
    │   └── NoteError           crypto/notes.py: a signed note or checkpoint that does not hold
    └── InfrastructureError     ours: storage, configuration, keys
        ├── StorageError
        │   └── Conflict        a write lost to a concurrent one (a unique key taken meanwhile)
        ├── ConfigError
        └── PkiError            pki.py: the development PKI directory is unusable

Each error has a stable machine-readable `reason` (it becomes google.rpc.ErrorInfo.reason at the
gRPC edge, and the audit log's reason). The mapping to gRPC status codes is in api/errors.py.
A class with a module beside it is defined there, next to what raises it. None of them is a
ValueError: a refusal is told apart from a bug's ValueError by its class, never by luck.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class GatewayError(Exception):
    default_reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason


class CallerError(GatewayError):
    default_reason = "BAD_REQUEST"


class InvalidArgument(CallerError):
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = violations

    @classmethod
    def field(cls, field: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        return cls(
            f"{field}: {description}",
            reason=reason,
            violations=(FieldViolation(field, description),),
        )


class DomainError(InvalidArgument):
    """A domain value (agreement, participant, catalog, identifier, timestamp) refused its
    arguments; the domain package raises nothing else for bad input."""


class Unauthenticated(CallerError):
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(CallerError):
    default_reason = "PERMISSION_DENIED"


class NotFound(CallerError):
    default_reason = "NOT_FOUND"


class AlreadyExists(CallerError):
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(CallerError):
    default_reason = "FAILED_PRECONDITION"


class ResourceExhausted(CallerError):
    default_reason = "QUOTA_EXHAUSTED"


class DeadlineExceeded(CallerError):
    default_reason = "DEADLINE_EXCEEDED"


class PeerError(GatewayError):
    default_reason = "BAD_SIGNATURE"


class InfrastructureError(GatewayError):
    default_reason = "INTERNAL"


class StorageError(InfrastructureError):
    default_reason = "STORAGE"

    def __init__(self, message: str, *, reason: str | None = None, transient: bool = False) -> None:
        super().__init__(message, reason=reason)
        # A deadlock or serialization failure: the same transaction may succeed if run again.
        self.transient = transient


class Conflict(StorageError):
    """A write lost to a concurrent transaction's: a row it inserts was inserted meanwhile. Run
    again as it was, it fails again; its caller redoes it so that it reads what the other stored
    first (services/submission.py)."""

    default_reason = "STORAGE_CONFLICT"


class ConfigError(InfrastructureError):
    default_reason = "CONFIG"
