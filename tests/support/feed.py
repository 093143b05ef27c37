"""A national platform under an exchange agreement (bulk_pull, change_feed) and the providing
units whose records it may or may not have, for tests/integration/test_exchange_pull.py and
test_exchange_feed.py.

The agreement covers registration, permits, punishments, "administrative other" (tax paid is
there, an Art 16 written-consent item) and market information, at every level up to
government; not commendations. So of what the providers submit, the platform may have the
registrations, permits and punishments inside their disclosure period, and never a volunteer
commendation (outside the agreement), a market record or tax paid (the law withholds them,
whatever the agreement says), nor a punishment past its disclosure period.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import select
from support.harness import (
    ORG_CODES,
    Harness,
    Participant,
    free_port,
    make_agreement,
    metadata,
    signed_record,
)

from credit_gateway.adapters.grpc.v1 import exchange_pb2, exchange_pb2_grpc, submission_pb2_grpc
from credit_gateway.adapters.storage.tables import AuditEntryRow
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.runtime.server import start

AGREEMENT = "agr-national"
PURPOSE = "SUPERVISION"
PLATFORM = "national-platform"
OTHER_COMPANY = ORG_CODES[1]

# item -> (providing unit, payload builder)
_PAYLOADS: dict[str, tuple[str, Any]] = {
    "REG.ENTERPRISE": ("hubei-amr", lambda m: {"name": m, "established_on": "2015-03-01"}),
    "ADM.PERMIT": (
        "hubei-amr",
        lambda m: {"permit_no": m, "permit_type": "food", "authority": "AMR"},
    ),
    "ADM.PUNISHMENT": (
        "hubei-amr",
        lambda m: {
            "decision_no": m,
            "violation": "v",
            "penalty": "fine",
            "decided_on": "2022-01-02",
            "authority": "AMR",
        },
    ),
    "COM.VOLUNTEER": (
        "hubei-civil-affairs",
        lambda m: {"kind": "donation", "description": m, "awarded_on": "2026-01-01"},
    ),
    "TAX.PAID": ("hubei-tax", lambda m: {"year": 2025, "amount_cny": 100.5}),
    "MKT.LOAN_REPAYMENT": (
        "hubei-credit-association",
        lambda m: {"lender": m, "status": "overdue", "overdue_days": 40},
    ),
}
AGREED = frozenset({"REG.ENTERPRISE", "ADM.PERMIT", "ADM.PUNISHMENT"})


@dataclass
class Exchange:
    h: Harness
    platform: Participant
    providers: dict[str, Participant]
    ids: dict[str, str] = field(default_factory=dict)  # label -> record id
    _n: int = 0

    def submit(
        self, *seeds: tuple[str, str, str], days_ago: int = 5, via: Harness | None = None
    ) -> list[str]:
        """Records (label, item, subject) submitted by each item's provider, one stream a
        provider, in the order given; their ids, kept under their labels too."""
        h = via or self.h
        by_provider: dict[str, list[tuple[str, Any]]] = {}
        for label, item, subject in seeds:
            provider_id, payload = _PAYLOADS[item]
            provider = self.providers[provider_id]
            self._n += 1
            record = signed_record(
                provider,
                record_id=f"{label}-{self._n}",
                item=item,
                subject=subject,
                payload=payload(f"M-{label}"),
                occurred_at=h.clock.now - timedelta(days=days_ago),
                notice=f"N-{self._n}" if item == "ADM.PUNISHMENT" else "",
            )
            by_provider.setdefault(provider_id, []).append((label, record))
        ids = {}
        for provider_id, records in by_provider.items():
            provider = self.providers[provider_id]
            channel = h.channel(provider.cert) if via is not None else provider.channel
            try:
                result = submission_pb2_grpc.SubmissionServiceStub(channel).SubmitRecords(
                    iter([r for _, r in records]), metadata=metadata(h.token(provider)), timeout=20
                )
            finally:
                if via is not None:
                    channel.close()
            assert result.accepted == len(records), result
            for (label, _), answer in zip(records, result.results, strict=True):
                ids[label] = answer.record_id
        self.ids.update(ids)
        return [ids[label] for label, _, _ in seeds]

    def pull(
        self,
        *subjects: str,
        items: Iterable[str] = (),
        caller: Participant | None = None,
        **kw: Any,
    ) -> list[exchange_pb2.PulledSubject]:
        caller = caller or self.platform
        request = exchange_pb2.PullRequest(
            agreement_id=kw.pop("agreement_id", AGREEMENT),
            purpose=PURPOSE,
            subjects=[exchange_pb2.SubjectRef(subject_code=s) for s in subjects],
            item_codes=list(items),
        )
        token = kw.pop("token", None) or self.h.token(caller)
        stream = exchange_pb2_grpc.ExchangeServiceStub(caller.channel).PullRecords(
            request, metadata=metadata(token), timeout=20
        )
        return list(stream)

    def subscribe(
        self,
        cursor: str = "",
        *,
        via: Harness | None = None,
        channel: grpc.Channel | None = None,
        agreement_id: str = AGREEMENT,
        timeout: float = 30,
    ) -> Any:
        """The stream (an iterator of ChangeBatch that can be cancelled)."""
        h = via or self.h
        request = exchange_pb2.SubscribeRequest(
            agreement_id=agreement_id, cursor=cursor, purpose=PURPOSE
        )
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel or self.platform.channel)
        return stub.SubscribeChanges(
            request, metadata=metadata(h.token(self.platform)), timeout=timeout
        )


def exchange_world(h: Harness) -> Exchange:
    providers = {
        p: h.add_participant(p, "providing-unit")
        for p in sorted({provider for provider, _ in _PAYLOADS.values()})
    }
    platform = h.add_participant(PLATFORM, "national-platform")
    make_agreement(
        h,
        platform,
        agreement_id=AGREEMENT,
        operations=("bulk_pull", "change_feed"),
        categories=(
            "registration",
            "administrative_permit",
            "administrative_punishment",
            "administrative_other",
            "market",
        ),
        purposes=(PURPOSE,),
        levels=("open", "authorized", "government"),
        days=2000,
    )
    return Exchange(h, platform, providers)


def entries(h: Harness, method: str) -> list[dict[str, Any]]:
    """The bodies of the audit entries of `method`, in log order."""
    with h.db.transaction(write=False) as session:
        bodies = session.scalars(
            select(AuditEntryRow.body)
            .where(AuditEntryRow.method == method)
            .order_by(AuditEntryRow.seq)
        )
        return [json.loads(body) for body in bodies]


def changes_in(batches: Iterable[exchange_pb2.ChangeBatch]) -> Iterator[exchange_pb2.RecordChange]:
    for batch in batches:
        yield from batch.changes


def replica(h: Harness, tmp: Path, **overrides: Any) -> Harness:
    """A second gateway in this process on the same database and master key (the same home),
    with ports of its own: a replica, as behind a load balancer. Close it with `.close()`."""
    s = h.settings
    settings = Settings.load(
        environ={},
        home=s.home,
        certs_dir=s.certs_dir,
        database_url=s.database_url,
        grpc_address="127.0.0.1:0",
        oauth_address=f"127.0.0.1:{free_port()}",
        **overrides,
    )
    running = start(settings, Gateway(settings, clock=h.clock))
    return Harness(settings, running, h.clock)


def read_changes(
    stream: Any, enough: int
) -> tuple[list[exchange_pb2.RecordChange], list[exchange_pb2.ChangeBatch]]:
    """Messages from the stream until `enough` changes came (the call's timeout bounds it): the
    changes, and every message read."""
    changes: list[exchange_pb2.RecordChange] = []
    messages: list[exchange_pb2.ChangeBatch] = []
    while len(changes) < enough:
        message = next(stream)
        messages.append(message)
        changes.extend(message.changes)
    return changes, messages
