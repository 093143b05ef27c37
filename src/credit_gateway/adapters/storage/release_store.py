"""The release transaction in SQL: exchange/release.py's ReleaseStore over the gateway's database.

The statements are SQL text, written once here and rendered once per dialect (placeholders, row
locks, insert-or-ignore), and run on the DBAPI cursor of the database thread's own connection
(Database.driver_transaction): per call there is no statement to build or compile, no
SQLAlchemy execution context and no pool checkout, only the driver's own work.

An attempt, unlocked (every call but a racing one):

  1. one SELECT: a context row (the subject's id, the agreement with today's usage, the consent)
     and a row per record of the subject (of the asked-for items), UNION ALL;
  2. the writes: the new subject (insert-or-ignore), the audit entry, the usage's conditional
     UPDATE, the consent's conditional UPDATE (and, for its last use, the EXHAUSTED event). On
     PostgreSQL these are one statement (data-modifying WITH), which answers how many rows each
     conditional write changed; elsewhere one statement each;
  3. COMMIT, or ROLLBACK if a conditional write found its row moved.

PostgreSQL so makes four round trips (BEGIN, 1, 2, COMMIT). The locked attempt (the retry) reads
the agreement, then the usage row and the consent FOR UPDATE, each alone (PostgreSQL cannot lock
the nullable side of an outer join), making today's usage row if it is missing.

A one-row read can join the context row: add its columns and its join to `_CONTEXT` and read
them in `_context` (e.g. the caller's standing, see storage/trust.py caller_state).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from credit_gateway.adapters.storage.agreements import parse_document
from credit_gateway.adapters.storage.consents import parse_terms
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.dialects import DIALECTS, Dialect
from credit_gateway.adapters.storage.tables import ARCHIVED
from credit_gateway.adapters.storage.trust import STANDING_COLUMNS, STANDING_JOIN, standing_from_row
from credit_gateway.caches import BoundedCache
from credit_gateway.domain.agreements import AgreementStatus
from credit_gateway.domain.audit import entry_mac, leaf_hash
from credit_gateway.domain.consent import Consent, ConsentStatus
from credit_gateway.domain.idempotency import RETENTION, NewRecord, Recorded
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.policy import AgreementState
from credit_gateway.domain.release import (
    ConsentUse,
    NewSubject,
    Reads,
    ReadState,
    StoredRecord,
    UsageCount,
    Writes,
)

# --- the statements, in `:name` placeholders ---------------------------------------------------

# The context row, part by part: (columns, joins), read back part by part in `_context`. The
# joins hang off a one-row derived table, so each part finds its row, or NULLs, whatever the
# others find. One more one-row read folds into the release transaction as one more part.
_CONTEXT: tuple[tuple[str, str], ...] = (
    ("s.id, s.kind", "LEFT OUTER JOIN subjects s ON s.lookup = :lookup"),
    (
        "a.document, a.status, u.calls, u.records",
        "LEFT OUTER JOIN agreements a ON a.id = :agreement"
        " LEFT OUTER JOIN quota_usage u ON u.agreement_id = a.id AND u.day = :day",
    ),
    (
        "c.id, c.subject_id, c.terms, c.status, c.uses, c.granted_at, c.status_changed_at,"
        " c.evidence",
        "LEFT OUTER JOIN consents c ON c.id = :consent",
    ),
    (STANDING_COLUMNS, STANDING_JOIN),  # the caller's, folded in (domain/release.py)
    (  # the answer recorded under the call's idempotency key (domain/idempotency.py)
        "k.fingerprint, k.inquiry_id, k.answer_key_id, k.answer, k.created_at",
        "LEFT OUTER JOIN idempotency_keys k ON k.caller = :idem_caller"
        " AND k.method = :idem_method AND k.idem_key = :idem_key",
    ),
)
_RECORD_COLUMNS = (
    "r.id, r.provider_id, r.item_code, r.occurred_at, r.payload_key_id, r.payload, r.state,"
    " r.objection_filed_at, r.disclosure_until"
)
_WIDTHS = [len(columns.split(",")) for columns, _ in _CONTEXT]
_PARTS = tuple(slice(1 + sum(_WIDTHS[:n]), 1 + sum(_WIDTHS[: n + 1])) for n in range(len(_WIDTHS)))
_CONTEXT_WIDTH = sum(_WIDTHS)
_RECORD_WIDTH = len(_RECORD_COLUMNS.split(","))
_READ = " ".join(  # `{items}`: the asked-for items' IN (...), or nothing
    [
        "SELECT 0,",
        ", ".join([*(columns for columns, _ in _CONTEXT), *["NULL"] * _RECORD_WIDTH]),
        "FROM (SELECT 1 AS one) q",
        *(join for _, join in _CONTEXT),
        "UNION ALL SELECT 1,",
        ", ".join([*["NULL"] * _CONTEXT_WIDTH, _RECORD_COLUMNS]),
        "FROM subjects rs JOIN records r ON r.subject_id = rs.id",
        "WHERE rs.lookup = :lookup{items}",
    ]
)
_ITEM_PARAMS = tuple(f"i{n}" for n in range(100))

_AGREEMENT = "SELECT document, status FROM agreements WHERE id = :agreement"
_USAGE_LOCKED = (
    "SELECT calls, records FROM quota_usage WHERE agreement_id = :agreement AND day = :day"
    "{for_update}"
)
_USAGE_NEW = (
    "{insert_ignore} INTO quota_usage (agreement_id, day, calls, records)"
    " SELECT id, :day, 0, 0 FROM agreements WHERE id = :agreement{on_conflict}"
)
_CONSENT_LOCKED = (
    "SELECT id, subject_id, terms, status, uses, granted_at, status_changed_at, evidence"
    " FROM consents WHERE id = :consent{for_update}"
)

_SUBJECT_NEW = (
    "{insert_ignore} INTO subjects (id, lookup, kind, code_key_id, code_sealed, public_jwk,"
    " created_at) VALUES (:subject_id, :lookup, :kind, :code_key_id, :code_sealed, NULL,"
    " :created_at){on_conflict}"
)
_AUDIT = (
    "INSERT INTO audit_entries (id, at, caller, method, subject_id, consent_id, agreement_id,"
    " outcome, body, leaf_hash, mac) VALUES (:audit_id, :audit_at, :caller, :method,"
    " :audit_subject, :audit_consent, :audit_agreement, :outcome, :body, :leaf_hash, :mac)"
)
_COUNT_USAGE = (
    "UPDATE quota_usage SET calls = calls + 1, records = records + :released"
    " WHERE agreement_id = :usage_agreement AND day = :usage_day AND calls < :calls_limit"
    " AND records + :released <= :records_limit"
)
# Each re-checks, on the row as it is now, what the decision saw: active, in its window, and
# this use not the last (or, for the last, exactly the last), so of two racing calls for the
# last use exactly one counts, on every replica.
_COUNT_USE = (
    "UPDATE consents SET uses = uses + 1 WHERE id = :use_consent AND status = 'active'"
    " AND valid_from <= :use_at AND valid_until > :use_at AND uses + 1 < max_uses"
)
_COUNT_LAST_USE = (
    "UPDATE consents SET uses = uses + 1, status = 'exhausted', status_changed_at = :use_at"
    " WHERE id = :use_consent AND status = 'active'"
    " AND valid_from <= :use_at AND valid_until > :use_at AND uses + 1 = max_uses"
)
_EXHAUSTED_EVENT = (
    "INSERT INTO consent_events (grantee_id, consent_id, request_id, from_status, to_status,"
    " actor, at) {source}"
)
_EVENT_VALUES = "VALUES (:grantee, :use_consent, NULL, 'active', 'exhausted', :actor, :use_at)"
# First of the writes: a racing call with the same key waits here on the key, not on a counter,
# and finding it recorded (insert-or-ignore: no row) rolls back and answers from the record.
_IDEMPOTENCY_NEW = (
    "{insert_ignore} INTO idempotency_keys (caller, method, idem_key, fingerprint, inquiry_id,"
    " answer_key_id, answer, created_at) VALUES (:idem_caller, :idem_method, :idem_key,"
    " :idem_fingerprint, :idem_inquiry, :idem_answer_key, :idem_answer, :idem_at){on_conflict}"
)
_IDEMPOTENCY_STALE = (
    "DELETE FROM idempotency_keys WHERE caller = :idem_caller AND method = :idem_method"
    " AND idem_key = :idem_key AND created_at <= :idem_cutoff"
)
_IDEMPOTENCY_PURGE = "DELETE FROM idempotency_keys WHERE created_at <= :idem_cutoff"


# --- dialects ----------------------------------------------------------------------------------


_AGREEMENT_STATUS = {s.value: s for s in AgreementStatus}
_CONSENT_STATUS = {s.value: s for s in ConsentStatus}
_SUBJECT_KIND = {k.value: k for k in SubjectKind}


# --- the store ---------------------------------------------------------------------------------


class _Moved(Exception):
    """A conditional write found its row moved: raised to roll the attempt back."""


class SqlReleaseStore:
    """exchange.release.ReleaseStore on a Database. Thread-safe: each call is its own
    transaction, on the calling thread's own connection."""

    MAX_USAGE_ROWS = 10_000

    def __init__(self, db: Database, mac_key: bytes, *, wait: bool = True) -> None:
        self._db = db
        self._mac_key = mac_key  # the audit entries' MAC (domain/audit.entry_mac)
        self._wait = wait  # False: SQLite on the event loop (db.driver_transaction)
        d = self._dialect = DIALECTS[db.dialect]
        self._reads: dict[int, str] = {}  # by the number of items asked for (0: all)
        self._writes: dict[tuple[bool, bool, bool | None, bool], str] = {}  # PostgreSQL's
        self._agreement = d.sql(_AGREEMENT)
        self._usage_locked = d.sql(_USAGE_LOCKED)
        self._usage_new = d.sql(_USAGE_NEW)
        self._consent_locked = d.sql(_CONSENT_LOCKED)
        self._subject_new = d.sql(_SUBJECT_NEW)
        self._audit = d.sql(_AUDIT)
        self._count_usage = d.sql(_COUNT_USAGE)
        self._count_use = d.sql(_COUNT_USE), d.sql(_COUNT_LAST_USE)
        self._event = d.sql(_EXHAUSTED_EVENT.format(source=_EVENT_VALUES))
        self._idempotency_new = d.sql(_IDEMPOTENCY_NEW)
        self._idempotency_stale = d.sql(_IDEMPOTENCY_STALE)
        self._idempotency_purge = d.sql(_IDEMPOTENCY_PURGE)
        # Today's rows known to exist.
        self._usage_rows: BoundedCache[tuple[str, date], bool] = BoundedCache(self.MAX_USAGE_ROWS)

    # --- ReleaseStore ---

    def ensure_usage_row(self, agreement_id: str, day: date) -> None:
        key = (agreement_id, day)
        if self._usage_rows.get(key):
            return
        with self._db.driver_transaction(wait=self._wait) as cursor:
            self._make_usage_row(cursor, agreement_id, day)
        self._usage_rows.put(key, True)

    def release(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
        try:
            with self._db.driver_transaction(wait=self._wait) as cursor:
                state = (
                    self._read_locked(cursor, reads) if reads.locked else self._read(cursor, reads)
                )
                if not self._write(cursor, decide(state)):
                    raise _Moved  # leaving the block rolls the whole attempt back
        except _Moved:
            return False
        return True

    def purge_idempotency(self, cutoff: datetime) -> int:
        """Deletes the recorded answers made at or before `cutoff` (past their retention), in a
        short transaction of its own; answers how many."""
        with self._db.driver_transaction(wait=self._wait) as cursor:
            cursor.execute(self._idempotency_purge, {"idem_cutoff": self._dialect.stamp(cutoff)})
            return int(cursor.rowcount)

    # --- reads ---

    def _read(self, cursor: Any, reads: Reads) -> ReadState:
        cursor.execute(
            self._read_sql(reads.item_codes),
            self._read_params(reads, reads.agreement_id, reads.consent_id),
        )
        return self._context(*self._split(cursor.fetchall()))

    def _split(
        self, rows: Sequence[Sequence[Any]]
    ) -> tuple[Sequence[Any], tuple[StoredRecord, ...]]:
        """The read's context row, and its record rows as records."""
        when = self._dialect.when
        context: Sequence[Any] = ()
        records = []
        for row in rows:
            if row[0] == 0:
                context = row
                continue
            rid, provider, item, occurred, key_id, payload, state, objected, until = row[
                -_RECORD_WIDTH:
            ]
            stored = StoredRecord(rid, provider, item, when(occurred), key_id, bytes(payload),
                                  state != ARCHIVED, objected and when(objected),
                                  until and when(until))  # fmt: skip
            records.append(stored)
        return context, tuple(records)

    def _context(self, row: Sequence[Any], records: tuple[StoredRecord, ...]) -> ReadState:
        (subject_id, kind), (document, status, calls, used), consent, standing, keyed = (
            row[p] for p in _PARTS
        )
        caller, revoked = standing_from_row(standing, self._dialect.when)
        agreement = None
        if document is not None:  # no usage row yet today: nothing used
            agreement = AgreementState(
                parse_document(bytes(document)), _AGREEMENT_STATUS[status], calls or 0, used or 0
            )
        return ReadState(
            subject_id,
            _SUBJECT_KIND.get(kind),
            records,
            agreement,
            self._consent(consent) if consent[0] else None,
            caller,
            revoked,
            self._recorded(keyed),
        )

    def _read_locked(self, cursor: Any, reads: Reads) -> ReadState:
        """The retry: the usage row and the consent read under their locks, in that order."""
        cursor.execute(self._read_sql(reads.item_codes), self._read_params(reads, None, None))
        context, records = self._split(cursor.fetchall())
        agreement = consent = None
        if reads.agreement_id is not None:
            agreement = self._agreement_locked(cursor, reads.agreement_id, reads.day)
        if reads.consent_id is not None:
            cursor.execute(self._consent_locked, {"consent": reads.consent_id})
            row = cursor.fetchone()
            consent = None if row is None else self._consent(row)
        caller, revoked = standing_from_row(context[_PARTS[-2]], self._dialect.when)
        subject_id, kind = context[_PARTS[0]]
        recorded = self._recorded(context[_PARTS[-1]])
        return ReadState(
            subject_id,
            _SUBJECT_KIND.get(kind),
            records,
            agreement,
            consent,
            caller,
            revoked,
            recorded,
        )

    def _recorded(self, part: Sequence[Any]) -> Recorded | None:
        fingerprint, inquiry_id, key_id, answer, created_at = part
        if fingerprint is None:
            return None
        return Recorded(
            fingerprint, inquiry_id, key_id, bytes(answer), self._dialect.when(created_at)
        )

    def _agreement_locked(self, cursor: Any, agreement_id: str, day: date) -> AgreementState | None:
        cursor.execute(self._agreement, {"agreement": agreement_id})
        found = cursor.fetchone()
        if found is None:
            return None
        params = {"agreement": agreement_id, "day": self._dialect.day(day)}
        cursor.execute(self._usage_locked, params)
        usage = cursor.fetchone()
        if usage is None:  # not made ahead (the day turned, or the row was removed)
            self._make_usage_row(cursor, agreement_id, day)
            cursor.execute(self._usage_locked, params)
            usage = cursor.fetchone()
        document, status = found
        return AgreementState(
            parse_document(bytes(document)), _AGREEMENT_STATUS[status], usage[0], usage[1]
        )

    def _make_usage_row(self, cursor: Any, agreement_id: str, day: date) -> None:
        """Insert-or-ignore: another call or replica may have made today's row first."""
        cursor.execute(self._usage_new, {"agreement": agreement_id, "day": self._dialect.day(day)})

    def _consent(self, row: Sequence[Any]) -> Consent:
        cid, subject_id, terms, status, uses, granted_at, changed_at, evidence = row
        when = self._dialect.when
        return Consent(
            id=cid,
            subject_id=subject_id,
            terms=parse_terms(bytes(terms)),
            status=_CONSENT_STATUS[status],
            uses=uses,
            granted_at=when(granted_at),
            status_changed_at=when(changed_at),
            evidence=evidence,
        )

    def _read_sql(self, items: tuple[str, ...] | None) -> str:
        count = len(items) if items else 0
        sql = self._reads.get(count)
        if sql is None:
            names = ", ".join(f":{p}" for p in _ITEM_PARAMS[:count])
            sql = _READ.format(items=f" AND r.item_code IN ({names})" if count else "")
            sql = self._reads[count] = self._dialect.sql(sql)
        return sql

    def _read_params(
        self, reads: Reads, agreement_id: str | None, consent_id: str | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "lookup": reads.subject_lookup,
            "agreement": agreement_id,
            "day": self._dialect.day(reads.day),
            "consent": consent_id,
            "participant": reads.standing.participant_id if reads.standing else None,
            "jti": reads.standing.jti if reads.standing else None,
            "idem_caller": reads.keyed.caller if reads.keyed else None,
            "idem_method": reads.keyed.method if reads.keyed else None,
            "idem_key": reads.keyed.key if reads.keyed else None,
        }
        if reads.item_codes:
            params.update(zip(_ITEM_PARAMS, reads.item_codes, strict=False))
        return params

    # --- writes ---

    def _write(self, cursor: Any, writes: Writes) -> bool:
        """True if every conditional write changed its one row."""
        params = self._write_params(writes)
        record = writes.idempotency
        if record is not None and record.replaces_stale:  # rare: alone, before the rest
            cursor.execute(self._idempotency_stale, params)
        if self._dialect.one_write_statement:
            cursor.execute(self._write_sql(writes), params)
            return all(n == 1 for n in cursor.fetchone())
        if record is not None:
            cursor.execute(self._idempotency_new, params)
            if cursor.rowcount != 1:  # a racing call with the key recorded it: answer as it
                return False
        if writes.subject is not None:
            cursor.execute(self._subject_new, params)
            if cursor.rowcount != 1:  # a concurrent call made it: decide again on it
                return False
        cursor.execute(self._audit, params)
        if writes.usage is not None:
            cursor.execute(self._count_usage, params)
            if cursor.rowcount != 1:
                return False
        use = writes.consent_use
        if use is not None:
            cursor.execute(self._count_use[use.last], params)
            if cursor.rowcount != 1:
                return False
            if use.last:
                cursor.execute(self._event, params)
        return True

    def _write_params(self, writes: Writes) -> dict[str, Any]:
        d, entry = self._dialect, writes.audit
        body = entry.body()
        params: dict[str, Any] = {
            "audit_id": entry.id,
            "audit_at": d.stamp(entry.at),
            "caller": entry.caller,
            "method": entry.method,
            "audit_subject": entry.subject_id,
            "audit_consent": entry.consent_id,
            "audit_agreement": entry.agreement_id,
            "outcome": entry.outcome,
            "body": body,
            "leaf_hash": leaf_hash(body),
            "mac": entry_mac(self._mac_key, body),
        }
        if writes.subject is not None:
            params.update(_subject_params(writes.subject, d))
        if writes.usage is not None:
            params.update(_usage_params(writes.usage, d))
        if writes.consent_use is not None:
            params.update(_use_params(writes.consent_use, d))
        if writes.idempotency is not None:
            params.update(_idempotency_params(writes.idempotency, d))
        return params

    def _write_sql(self, writes: Writes) -> str:
        """PostgreSQL: every write in one statement, answering each conditional write's count
        (1 for the parts this shape has not)."""
        use = writes.consent_use
        shape = (
            writes.subject is not None,
            writes.usage is not None,
            use.last if use else None,
            writes.idempotency is not None,
        )
        sql = self._writes.get(shape)
        if sql is None:
            has_subject, has_usage, last, has_record = shape
            parts = [f"w_audit AS ({_AUDIT})"]
            counts = []
            if has_record:
                parts.insert(0, f"w_record AS ({_IDEMPOTENCY_NEW} RETURNING 1)")
                counts.append("(SELECT count(*) FROM w_record)")
            if has_subject:
                parts.insert(0, f"w_subject AS ({_SUBJECT_NEW} RETURNING 1)")
                counts.append("(SELECT count(*) FROM w_subject)")
            if has_usage:
                parts.append(f"w_usage AS ({_COUNT_USAGE} RETURNING 1)")
                counts.append("(SELECT count(*) FROM w_usage)")
            if use is not None:
                parts.append(f"w_use AS ({_COUNT_LAST_USE if last else _COUNT_USE} RETURNING 1)")
                counts.append("(SELECT count(*) FROM w_use)")
                if last:
                    event = _EXHAUSTED_EVENT.format(
                        source="SELECT :grantee, :use_consent, NULL, 'active', 'exhausted',"
                        " :actor, :use_at FROM w_use"
                    )
                    parts.append(f"w_event AS ({event})")
            sql = f"WITH {', '.join(parts)} SELECT {', '.join(counts) or '1'}"
            sql = self._writes[shape] = self._dialect.sql(sql)
        return sql


def _subject_params(subject: NewSubject, d: Dialect) -> dict[str, Any]:
    return {
        "subject_id": subject.id,
        "lookup": subject.lookup,
        "kind": subject.kind.value,
        "code_key_id": subject.code_key_id,
        "code_sealed": subject.code_sealed,
        "created_at": d.stamp(subject.created_at),
    }


def _usage_params(usage: UsageCount, d: Dialect) -> dict[str, Any]:
    return {
        "usage_agreement": usage.agreement_id,
        "usage_day": d.day(usage.day),
        "released": usage.records,
        "calls_limit": usage.calls_limit,
        "records_limit": usage.records_limit,
    }


def _use_params(use: ConsentUse, d: Dialect) -> dict[str, Any]:
    return {
        "use_consent": use.consent_id,
        "use_at": d.stamp(use.at),
        "grantee": use.grantee_id,
        "actor": use.actor,
    }


def _idempotency_params(record: NewRecord, d: Dialect) -> dict[str, Any]:
    return {
        "idem_caller": record.keyed.caller,
        "idem_method": record.keyed.method,
        "idem_key": record.keyed.key,
        "idem_fingerprint": record.fingerprint,
        "idem_inquiry": record.inquiry_id,
        "idem_answer_key": record.answer_key_id,
        "idem_answer": record.answer,
        "idem_at": d.stamp(record.created_at),
        "idem_cutoff": d.stamp(record.created_at - RETENTION),
    }
