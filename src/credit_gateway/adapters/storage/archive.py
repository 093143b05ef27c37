"""Taking records out of service into the archive (Art 29-31, and disclosure periods ending):
the record's row stays, as the archive, with when and why; every read path's policy reads
`state` and releases it no more; the change feed tells the platforms, in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import feed
from credit_gateway.adapters.storage.tables import ACTIVE, ARCHIVED, RecordRow
from credit_gateway.domain.exchange import ChangeKind

# archive_reason, and the change the feed carries for it
CORRECTED = "corrected"  # Art 29: an objection upheld, a new version replaces it
RESTORED = "restored"  # Art 30: credit restoration
DELETED = "deleted"  # Art 31: on the subject's application
PERIOD_ENDED = "period_ended"  # its disclosure period ended
_CHANGE = {
    CORRECTED: None,  # the feed carries the new version (KIND_CORRECTED, replaces = this one)
    RESTORED: ChangeKind.RESTORED,
    DELETED: ChangeKind.DELETED,
    PERIOD_ENDED: ChangeKind.EXPIRED,
}


def archive(
    session: Session,
    records: Sequence[tuple[str, str, str]],
    reason: str,
    now: datetime,
) -> list[str]:
    """Takes `records` ((record id, item code, subject id)) out of service for `reason`;
    answers the ids it archived: those still in service (archiving twice changes nothing).
    Appends their feed changes (CORRECTED: none, the caller appends the new version's), so
    call it last in the transaction, as feed.append."""
    change = _CHANGE[reason]
    archived = []
    for record_id, item_code, subject_id in records:
        result = session.execute(
            update(RecordRow)
            .where(RecordRow.id == record_id, RecordRow.state == ACTIVE)
            .values(state=ARCHIVED, archived_at=now, archive_reason=reason, objection_filed_at=None)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            archived.append((record_id, item_code, subject_id))
    if change is not None:
        feed.append(
            session, [feed.Change(r, item, subject, change.value) for r, item, subject in archived],
            now,
        )  # fmt: skip
    return [r for r, _, _ in archived]
