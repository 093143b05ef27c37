"""The time rules, applied by one scheduler: `credit-gateway maintain`, and inside `serve` every
maintain_interval_seconds on the one replica holding the lease "maintain".

The policy already judges each rule by the clock on every read path (domain/policy.py); a run
writes down what the clock decided, tells the platforms (the change feed) and the grantees (the
consent events WatchConsents tails), and drops what is kept no longer. Each run reads `now` once;
each rule moves what has come due by then, in batches of `batch` rows a transaction, each batch
with its audit entries (caller OPERATOR, methods domain/audit.MAINTAIN_METHODS) in it:

1. objection-suspended (Art 29 para 2): a pending objection unanswered at its due_at (15 days)
   is suspended, and a `suspended` change for its record goes to the feed. One entry an
   objection, naming it and its record.
2. disclosure-ended: a record in service past its disclosure period (its disclosure_until; one
   stored before that was kept, its catalog item's default period from occurred_at, in the
   catalog in force) leaves service into the archive (storage/archive.py: the feed's `expired`
   change). One entry a subject a batch, naming its records.
3. consent-expired (Art 19): a consent active or paused past its valid_until becomes expired,
   with its consent event. One entry a consent.
4. inquiries-pruned (Art 19 para 2: inquiry records kept 3 years): the bodies of audit entries
   past audit_retention_days go, their hashes kept, as `audit prune` removes them. One entry a
   run that pruned any.
5. feed-pruned: changes older than feed_retention_days leave the feed (services/feed.py: its
   `feed.prune` entry).

Every rule is idempotent: a moved row no longer matches, so a second run at the same time moves
and writes nothing. They are safe to run concurrently too (rows are read under lock and moved
conditionally): the lease only keeps replicas from doing the same work twice. The methods are
blocking (transactions): the server runs them on its database threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import leases, tlog
from credit_gateway.adapters.storage import maintain as store
from credit_gateway.domain.audit import OPERATOR, AuditEntry, decision_entry
from credit_gateway.domain.catalog import Catalog
from credit_gateway.domain.decisions import Reason
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import FailedPrecondition
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import Gateway, utcnow
from credit_gateway.services.feed import FeedService

LEASE = "maintain"
LEASE_INTERVALS = 3  # a lease lasts this many intervals: a replica that dies is replaced after
BATCH = 500  # rows moved in one transaction

OBJECTIONS, DISCLOSURE, CONSENTS, INQUIRIES, FEED = (
    "objection-suspended", "disclosure-ended", "consent-expired", "inquiries-pruned",
    "feed-pruned",
)  # fmt: skip
JOBS = (OBJECTIONS, DISCLOSURE, CONSENTS, INQUIRIES, FEED)  # in the order a run applies them


@dataclass(frozen=True, slots=True)
class Report:
    """What a run moved, by job (JOBS' order); `stopped`: the lease was lost to another runner
    part way, and the rest was left to it."""

    counts: Mapping[str, int]
    stopped: bool = False

    @property
    def moved(self) -> int:
        return sum(self.counts.values())


# --------------------------------------------------------------------------- pure parts


def default_cutoffs(catalog: Catalog, now: datetime) -> dict[datetime, tuple[str, ...]]:
    """For records stored without a disclosure_until: the items by cutoff, a record of one of
    them that occurred at or before its cutoff past its default period at `now` (as the policy
    has it: policy.disclosure_until is item.disclosure_until({}, occurred_at))."""
    by_cutoff: dict[datetime, list[str]] = {}
    for item in catalog.items.values():
        by_cutoff.setdefault(now - timedelta(days=item.period_for({}).longest), []).append(
            item.code
        )
    return {cutoff: tuple(sorted(codes)) for cutoff, codes in sorted(by_cutoff.items())}


def suspension_entry(
    objection_id: str, record_id: str, subject_id: str, now: datetime
) -> AuditEntry:
    return decision_entry(
        at=now, caller=OPERATOR, method="maintain.objection-suspended", outcome="SUSPENDED",
        reasons=(Reason.OBJECTION_SUSPENDED.value,), subject_id=subject_id,
        items=(objection_id, record_id),
    )  # fmt: skip


def period_ended_entries(
    records: Iterable[tuple[str, str, str]], now: datetime
) -> list[AuditEntry]:
    """One entry per subject of (record id, item code, subject id), naming its records."""
    by_subject: dict[str, list[str]] = {}
    for record_id, _, subject_id in records:
        by_subject.setdefault(subject_id, []).append(record_id)
    return [
        decision_entry(
            at=now,
            caller=OPERATOR,
            method="maintain.disclosure-ended",
            outcome="ARCHIVED",
            reasons=(Reason.DISCLOSURE_PERIOD_ENDED.value,),
            subject_id=subject_id,
            items=tuple(sorted(ids)),
        )
        for subject_id, ids in sorted(by_subject.items())
    ]


def expiry_entry(consent_id: str, subject_id: str, now: datetime) -> AuditEntry:
    return decision_entry(
        at=now, caller=OPERATOR, method="maintain.consent-expired", outcome="EXPIRED",
        reasons=(Reason.CONSENT_EXPIRED.value,), subject_id=subject_id, consent_id=consent_id,
    )  # fmt: skip


def prune_entry(before: datetime, pruned: int, now: datetime) -> AuditEntry:
    """As `audit prune`'s entry: up to when, and how many."""
    return decision_entry(
        at=now, caller=OPERATOR, method="maintain.inquiries-pruned", outcome="PRUNED",
        items=(canonical_timestamp(before, "before"), str(pruned)),
    )  # fmt: skip


# --------------------------------------------------------------------------- the runner


class Maintenance:
    """The runner of one process (`holder` names it in the lease)."""

    def __init__(self, gateway: Gateway, holder: str, *, batch: int = BATCH) -> None:
        self.gateway, self.db, self.holder, self.batch = gateway, gateway.db, holder, batch
        interval = gateway.settings.maintain_interval_seconds
        self.lease_time = timedelta(seconds=interval * LEASE_INTERVALS)
        self._mac_key = gateway.audit.mac_key
        self._feed = FeedService(gateway)

    # --- the lease ---------------------------------------------------------------------------

    def take_lease(self, now: datetime) -> bool:
        with self.db.transaction() as session:
            return leases.take(session, LEASE, self.holder, now, now + self.lease_time)

    def renew_lease(self) -> bool:
        until = self.gateway.clock() + self.lease_time
        with self.db.transaction() as session:
            return leases.renew(session, LEASE, self.holder, until)

    def release_lease(self) -> None:
        with self.db.transaction() as session:
            leases.release(session, LEASE, self.holder, self.gateway.clock())

    def lease_holder(self) -> leases.Lease | None:
        with self.db.transaction(write=False) as session:
            return leases.held(session, LEASE, self.gateway.clock())

    # --- runs --------------------------------------------------------------------------------

    def scheduled(self) -> Report | None:
        """Serve's tick: a run if this replica holds the lease or takes it, renewed as it goes
        and kept for the next tick; None when another holds it. The lease is taken at the
        run's `now`, so it is held at every instant the rules are applied at."""
        now = self.gateway.clock()
        if not self.take_lease(now):
            return None
        return self.run(now, self.renew_lease)

    def once(self, *, force: bool = False) -> Report:
        """`credit-gateway maintain`: a run under the lease, given back at the end. Refused
        (MAINTAIN_LEASE_HELD) while another holds it, unless `force`: then it runs beside it."""
        now = self.gateway.clock()
        if self.take_lease(now):
            try:
                return self.run(now, self.renew_lease)
            finally:
                self.release_lease()
        if not force:
            held = self.lease_holder()
            who = (
                f"held by {held.holder} until {canonical_timestamp(held.until)}"
                if held is not None
                else "held by another runner"
            )
            raise FailedPrecondition(
                f"maintain's lease is {who}: a server applies the time rules every "
                "maintain_interval_seconds; --force runs them beside it",
                reason="MAINTAIN_LEASE_HELD",
            )
        return self.run(now)

    def run(self, now: datetime, keep: Callable[[], bool] = lambda: True) -> Report:
        """Every rule at one `now`. Between batches `keep()` renews the lease: False (lost)
        stops the run there."""
        counts = dict.fromkeys(JOBS, 0)
        batched = (
            (OBJECTIONS, self._suspend_objections),
            (DISCLOSURE, self._end_disclosure),
            (CONSENTS, self._expire_consents),
        )
        for job, step in batched:
            while True:
                done = step(now)
                counts[job] += done
                if done < self.batch:
                    break
                if not keep():
                    return Report(counts, stopped=True)
        counts[INQUIRIES] = self._prune_inquiries(now)
        counts[FEED] = self._feed.prune()[1]
        return Report(counts)

    def _suspend_objections(self, now: datetime) -> int:
        with self.db.transaction() as session:
            due = store.due_objections(session, now, self.batch)
            for o in due:
                entry = suspension_entry(o.id, o.record_id, o.subject_id, now)
                audit_store.append(session, self._mac_key, entry)
            store.suspend(session, due, now)  # the feed's changes last
        return len(due)

    def _end_disclosure(self, now: datetime) -> int:
        try:
            cutoffs = default_cutoffs(self.gateway.catalog.get(), now)
        except FailedPrecondition as error:
            if error.reason != "NO_CATALOG":
                raise
            cutoffs = {}  # no catalog yet: no record was stored under one
        with self.db.transaction() as session:
            ended = store.ended_records(session, now, cutoffs, self.batch)
            for entry in period_ended_entries(ended, now):
                audit_store.append(session, self._mac_key, entry)
            store.archive_ended(session, ended, now)  # the feed's changes last
        return len(ended)

    def _expire_consents(self, now: datetime) -> int:
        with self.db.transaction() as session:
            lapsed = store.lapsed_consents(session, now, self.batch)
            store.expire(session, lapsed, OPERATOR, now)
            for c in lapsed:
                audit_store.append(session, self._mac_key, expiry_entry(c.id, c.subject_id, now))
        return len(lapsed)

    def _prune_inquiries(self, now: datetime) -> int:
        retention = self.gateway.audit.retention
        before = now - retention
        with self.db.transaction() as session:
            pruned = tlog.prune(session, before, now, retention)
            if pruned:
                audit_store.append(session, self._mac_key, prune_entry(before, pruned, now))
        return pruned


def run_command(settings: Settings, holder: str, *, force: bool = False) -> Report:
    """`credit-gateway maintain`, on a gateway of the command's own."""
    gateway = Gateway(settings, clock=lambda: utcnow())  # looked up at each call: tests move it
    try:
        return Maintenance(gateway, holder).once(force=force)
    finally:
        gateway.close()
