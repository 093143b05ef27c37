"""The release path: every inquiry and sharing call goes through `InquiryService.release()`.

The release itself is exchange/release.py, a flow without I/O: what an attempt reads, the
decision (policy.decide) and the writes, and the retry under locks when a racing call moved a
counter. This module gives it its inputs (the subject code parsed and looked up, the consent
token verified, the current catalog) and runs it against the SQL store (storage/release_store.py),
which makes each attempt's reads and writes in one transaction. Consent status is read in that
transaction, never from a cache: a revocation acts on the very next call on every replica.
"""

from __future__ import annotations

import time
from datetime import date, datetime

from credit_gateway.adapters.storage.db import WriterBusy
from credit_gateway.adapters.storage.release_store import SqlReleaseStore
from credit_gateway.caches import BoundedCache
from credit_gateway.consent.tokens import ConsentTokenError
from credit_gateway.domain.idempotency import RETENTION
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.policy import Channel
from credit_gateway.domain.release import (
    MAX_ITEMS,
    ConsentToken,
    Inquiry,
    InquiryResult,
    Released,
    ReleaseFlow,
    Subject,
    WithheldSummary,
    check_items,
    parse_subject,
    run,
)
from credit_gateway.errors import StorageError
from credit_gateway.runtime.gateway import Gateway

__all__ = [
    "MAX_ITEMS",
    "Inquiry",
    "InquiryResult",
    "InquiryService",
    "Released",
    "WithheldSummary",
    "parse_subject",
]


class InquiryService:
    MAX_SUBJECTS = 10_000  # parsed subject codes kept
    PURGE_EVERY = 600.0  # seconds between purges of recorded answers past their retention

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = SqlReleaseStore(gateway.db, gateway.audit.mac_key)
        self._purger = self.store  # kept: tests stand other stores in for `store`
        sqlite = gateway.db.dialect == "sqlite"
        self._now_store = (
            SqlReleaseStore(gateway.db, gateway.audit.mac_key, wait=False) if sqlite else None
        )
        # A code's parse and lookup key do not change; its parse depends on the kind asked for
        # and the day (a resident id with a birth date after it is refused), so both are kept by
        # code, kind and day.
        self._subjects: BoundedCache[tuple[str, SubjectKind | None, date], Subject] = BoundedCache(
            self.MAX_SUBJECTS
        )
        self._purged_at: float | None = None  # time.monotonic() of the last purge

    def release(self, inquiry: Inquiry) -> InquiryResult:
        """Synchronous: one call is one job on one database thread."""
        return self._release(inquiry, self.store)

    async def release_on_loop(self, inquiry: Inquiry) -> InquiryResult | None:
        """The release on the event loop's own thread: SQLite only. While a thread of this
        process holds the writer, it waits for it on the loop; None if another process holds
        the database: release() it on a database thread instead (nothing was written). A
        SQLite transaction is local work of a few hundred microseconds; handing it to a thread
        cost more than that, in GIL hand-offs for every statement while it held the writer."""
        while self._now_store is not None:
            try:
                return self._release(inquiry, self._now_store)
            except WriterBusy as busy:
                if not busy.here:
                    break
            await self.gateway.db.writer_released()
        return None

    def _release(self, inquiry: Inquiry, store: SqlReleaseStore) -> InquiryResult:
        gw = self.gateway
        now = gw.clock()
        self._purge_if_due(self._now_store if store is self._now_store else self._purger, now)
        subject = self._subject(inquiry.subject_code, inquiry.subject_kind, now)
        check_items(inquiry.item_codes)
        catalog = gw.catalog.get()
        flow = ReleaseFlow(inquiry, subject, self._token(inquiry, now), catalog, now, gw.envelope)
        return run(flow, store)

    def _purge_if_due(self, store: SqlReleaseStore, now: datetime) -> None:
        """Recorded answers past their retention are deleted now and then, in a transaction of
        their own (one range delete per release would contend on the index on every call);
        until then they are only not honoured."""
        ticks = time.monotonic()
        if self._purged_at is not None and ticks - self._purged_at < self.PURGE_EVERY:
            return
        try:
            store.purge_idempotency(now - RETENTION)
        except StorageError:  # housekeeping: the call it rode on is answered all the same
            return
        self._purged_at = ticks

    def _subject(self, code: str, asked: SubjectKind | None, now: datetime) -> Subject:
        def parsed() -> Subject:  # a bad code raises, and nothing is kept
            kind, value = parse_subject(code, now, asked)
            return Subject(kind, value, self.gateway.subject_lookup(value))

        return self._subjects.get_or_make((code, asked, now.date()), parsed)

    def _token(self, inquiry: Inquiry, now: datetime) -> ConsentToken | None:
        """What the consent token says, if the channel takes one and the call carries one."""
        if inquiry.channel is not Channel.AUTHORIZED_INQUIRY or not inquiry.consent_token:
            return None
        try:
            claims = self.gateway.consent_verifier.verify(inquiry.consent_token, now)
        except ConsentTokenError as exc:
            return ConsentToken(exc.consent_id, refused=exc.reason)
        return ConsentToken(claims.consent_id, claims.grantee)
