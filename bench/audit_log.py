"""The audit log's figures for `make bench`: integration rate and proof time at a million entries.

In this process, on a SQLite database of its own:

1. `entries` audit entries are written as the release path writes them (body, leaf hash, MAC);
2. they are integrated as the server's integrator does, in batches of `audit_batch`;
3. inclusion and consistency proofs are timed through services/audit.AuditLog, one transaction
   each, as AuditService serves them.

The release path with and without the integrator running is measured by bench/run.py, against
the gateway server itself.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from credit_gateway.adapters.storage import migrate
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import AuditEntryRow, core
from credit_gateway.crypto.master import MasterKey
from credit_gateway.domain.audit import AuditEntry, entry_mac, leaf_hash
from credit_gateway.services.audit import AuditLog

WRITE_CHUNK = 20_000
PROOFS = 1000
AT = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def measure(work: Path, entries: int, batch: int = 10_000) -> dict[str, Any]:
    db = Database.connect(f"sqlite:///{work / 'audit-bench.db'}")
    try:
        migrate.upgrade(db.engine)
        log = AuditLog(db, MasterKey(bytes(32)), "bench.example/audit", lambda: AT, batch=batch)
        started = time.perf_counter()
        _write(db, log.mac_key, entries)
        written = time.perf_counter() - started
        started = time.perf_counter()
        last_batch = 0.0
        while True:
            t = time.perf_counter()
            done = log.integrate()
            if done is None:
                break
            last_batch = done.added / (time.perf_counter() - t)
        integrated = time.perf_counter() - started
        size = log.checkpoint().size
        inclusion = _timed(lambda: log.inclusion(random.randrange(size), None, size), PROOFS)
        consistency = _timed(lambda: log.consistency(random.randrange(1, size), size), PROOFS)
        return {
            "entries": size,
            "written_per_s": entries / written,
            "integrated_per_s": size / integrated,
            "last_batch_per_s": last_batch,
            "inclusion_ms": inclusion,
            "consistency_ms": consistency,
        }
    finally:
        db.dispose()


def _write(db: Database, mac_key: bytes, entries: int) -> None:
    insert = core(AuditEntryRow).insert()
    for start in range(0, entries, WRITE_CHUNK):
        rows = []
        for n in range(start, min(start + WRITE_CHUNK, entries)):
            entry = AuditEntry(
                f"inq_{n:012d}", AT, "bench-agency", "QueryAuthorized", f"sub_{n % 9973}",
                "BENCHMARK", ("TAX.PAID",), "RELEASED", (), "agr-bench", f"con_{n % 101}",
                (f"rec_{n}",),
            )  # fmt: skip
            body = entry.body()
            rows.append(
                {
                    "id": entry.id, "at": AT, "caller": entry.caller, "method": entry.method,
                    "subject_id": entry.subject_id, "consent_id": entry.consent_id,
                    "agreement_id": entry.agreement_id, "outcome": entry.outcome, "body": body,
                    "leaf_hash": leaf_hash(body), "mac": entry_mac(mac_key, body),
                }
            )  # fmt: skip
        with db.transaction() as session:
            session.execute(insert, rows)


def _timed(call: Any, count: int) -> dict[str, float]:
    times = []
    for _ in range(count):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"mean": statistics.fmean(times), "p99": times[int(len(times) * 0.99)]}
