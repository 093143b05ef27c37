"""What a right's call (an objection filed or answered, a restoration, a deletion) may name in
its audit entry, and its refusals put on record: a refusal decided on what the call read rolls
the call back, then is recorded in a transaction of its own before it reaches the caller, as
consent/lifecycle.py records its refusals."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.domain.audit import REFUSED, AuditEntry, decision_entry
from credit_gateway.errors import CallerError
from credit_gateway.runtime.gateway import Gateway


@dataclass(slots=True)
class Seen:
    """Who asked, and as far as the call got: about whom, and which item (named only once the
    record is known to be the subject's or the caller's)."""

    method: str
    caller: str
    now: datetime
    subject_id: str | None = None
    items: tuple[str, ...] = ()

    def entry(self, outcome: str, reasons: tuple[str, ...] = ()) -> AuditEntry:
        return decision_entry(
            at=self.now,
            caller=self.caller,
            method=self.method,
            outcome=outcome,
            reasons=reasons,
            subject_id=self.subject_id,
            items=self.items,
        )


@contextmanager
def refusals_on_record(gateway: Gateway, seen: Seen) -> Iterator[None]:
    """A refusal raised inside the block (outside its transaction, so that one has rolled back)
    recorded with what `seen` holds by then, and raised on."""
    try:
        yield
    except CallerError as refused:
        with gateway.db.transaction() as session:
            audit_store.append(
                session, gateway.audit.mac_key, seen.entry(REFUSED, (refused.reason,))
            )
        raise
