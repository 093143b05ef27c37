"""ArchiveService over the real server (Art 30-31): a providing unit's signed credit restoration
decision and a subject's application for deletion take a record out of service. From then on no
read path releases it (inquiry, government sharing, pull), the change feed withdraws it without
content, the archive keeps the row (and the signed decision), and the audit log shows the
transition. Asked again, each answers as before and writes nothing; each refusal changes
nothing but the audit log's entry of it (services/archive.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import select
from support import government
from support.configured import configured_harness
from support.databases import rows_but_the_log
from support.feed import Exchange, read_changes
from support.harness import (
    COMPANY,
    PERSON,
    Clock,
    Harness,
    Participant,
    make_agreement,
    metadata,
    signed_record,
)
from support.rpc import status_of
from support.scenario import submit

from credit_gateway.adapters.grpc.v1 import (
    exchange_pb2,
    inquiry_pb2,
    inquiry_pb2_grpc,
    rights_pb2,
    rights_pb2_grpc,
)
from credit_gateway.adapters.storage.archive import PERIOD_ENDED, archive
from credit_gateway.adapters.storage.tables import (
    AuditEntryRow,
    RecordRow,
    RestorationRow,
)
from credit_gateway.crypto.signatures import sign_es256
from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.exchange.agreements import load_private_key

Kind = exchange_pb2.RecordChange
FAILED = grpc.StatusCode.FAILED_PRECONDITION
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PUNISHMENT_DAYS_AGO = 100  # a general punishment: restorable 90 days on (its shortest period)


@dataclass
class World:
    h: Harness
    amr: Participant  # provides punishments and permits
    civil: Participant  # provides commendations, volunteer service and donations
    agency: Participant
    portal: Participant
    exchange: Exchange
    sharing: government.World
    ids: dict[str, str]  # provider_record_id -> record id


@pytest.fixture
def w(tmp_path: Path, certs_dir: Path, database_url: str, clock: Clock) -> Iterator[World]:
    with configured_harness(tmp_path, certs_dir, database_url, clock, feed_poll_ms=50) as h:
        yield _world(h)


def _world(h: Harness) -> World:
    """Every reader of the records, each under an agreement covering punishments, permits and
    commendations; a company's general punishment, a person's volunteer record and permit, and
    a company's volunteer record."""
    amr = h.add_participant("hubei-amr", "providing-unit")
    civil = h.add_participant("hubei-civil-affairs", "providing-unit")
    agency = h.add_participant("zx-credit", "credit-agency")
    portal = h.add_participant("realname-portal", "identity-provider")
    gov = h.add_participant("hubei-drc", "government-department")
    platform = h.add_participant("national-platform", "national-platform")
    categories = ("administrative_punishment", "administrative_permit", "commendation_volunteer")
    levels = ("open", "authorized", "government")
    make_agreement(h, agency, agreement_id="agr-zx-credit", categories=categories)
    make_agreement(
        h,
        gov,
        agreement_id=government.AGREEMENT,
        operations=("government_sharing",),
        categories=categories,
        purposes=(government.PURPOSE,),
        levels=levels,
    )
    make_agreement(
        h,
        platform,
        agreement_id="agr-national",
        operations=("bulk_pull", "change_feed"),
        categories=categories,
        purposes=("SUPERVISION",),
        levels=levels,
    )
    now = h.clock.now
    punishment = {
        "decision_no": "D-1",
        "violation": "unlicensed trading",
        "penalty": "fine",
        "decided_on": "2026-01-02",
        "authority": "Wuhan AMR",
        "severity": "general",
    }
    permit = {"permit_no": "P-1", "permit_type": "food", "authority": "AMR"}
    ids: dict[str, str] = {}
    for provider, records in (
        (amr, [
            ("pun", "ADM.PUNISHMENT", COMPANY, punishment, PUNISHMENT_DAYS_AGO, "N-1"),
            ("permit", "ADM.PERMIT", PERSON, permit, 5, ""),
        ]),
        (civil, [
            ("vol", "COM.VOLUNTEER", PERSON, _volunteer("M-vol"), 5, ""),
            ("c_vol", "COM.VOLUNTEER", COMPANY, _volunteer("M-c_vol"), 5, ""),
        ]),
    ):  # fmt: skip
        signed = [
            signed_record(
                provider,
                record_id=rid,
                item=item,
                subject=subject,
                payload=payload,
                occurred_at=now - timedelta(days=days),
                notice=notice,
            )
            for rid, item, subject, payload, days, notice in records
        ]
        result = submit(h, provider, signed)
        assert result.accepted == len(signed), result
        ids.update({r.provider_record_id: r.record_id for r in result.results})
    providers = {"hubei-amr": amr, "hubei-civil-affairs": civil}
    return World(
        h,
        amr,
        civil,
        agency,
        portal,
        Exchange(h, platform, providers),
        government.World(h, gov, ids),
        ids,
    )


def _volunteer(marker: str) -> dict[str, str]:
    return {"kind": "donation", "description": marker, "awarded_on": "2026-01-01"}


# --- calls ---------------------------------------------------------------------------------------


def decision(
    w: World,
    provider_record_id: str = "pun",
    *,
    number: str = "RD-2026-7",
    decided_at: datetime | None = None,
    basis: str = "the fine was paid and the obligations performed (Art 30 (1))",
    provider: Participant | None = None,
    signer: Any = None,
) -> rights_pb2.RestorationDecision:
    """A decision signed by the provider's key (or `signer`, under the provider's key id), as
    docs/canonical.md tells a provider to sign it (malformed ones too)."""
    provider = provider or w.amr
    at = decided_at or w.h.clock.now - timedelta(days=1)
    key = signer or load_private_key(provider.cert.key_path)
    pb = rights_pb2.RestorationDecision(
        provider_record_id=provider_record_id,
        decision_number=number,
        basis=basis,
        signature=sign_es256(key, signed_bytes(provider.id, provider_record_id, number, at, basis)),
        key_id=provider.cert.x5t_s256,
    )
    pb.decided_at.FromDatetime(at)
    return pb


def signed_bytes(provider: str, rid: str, number: str, at: datetime, basis: str) -> bytes:
    return canonical_bytes(
        {
            "format": "credit-gateway/restoration/v1",
            "provider": provider,
            "provider_record_id": rid,
            "decision_number": number,
            "decided_at": canonical_timestamp(at),
            "basis": basis,
        }
    )


def restore(
    w: World, pb: rights_pb2.RestorationDecision, provider: Participant | None = None
) -> Any:
    provider = provider or w.amr
    return rights_pb2_grpc.ArchiveServiceStub(provider.channel).SubmitRestoration(
        pb, metadata=metadata(w.h.token(provider)), timeout=10
    )


def apply_deletion(w: World, record_id: str) -> Any:
    return rights_pb2_grpc.ArchiveServiceStub(w.portal.channel).ApplyDeletion(
        rights_pb2.ApplyDeletionRequest(record_id=record_id),
        metadata=metadata(w.h.subject_token(w.portal, PERSON)),
        timeout=10,
    )


def answer(archived: Any) -> tuple[str, str, datetime, str, str]:
    return (
        archived.record_id,
        archived.item_code,
        archived.archived_at.ToDatetime(),
        archived.archive_reason,
        archived.audit_entry_id,
    )


# --- the read paths ----------------------------------------------------------------------------


def readable(w: World, subject: str, item: str) -> dict[str, set[str]]:
    """The record ids of `item` about `subject` each read path releases now: an inquiry (an
    agency's QueryOpen of a company, the person's own QueryOwn), government sharing, a pull."""
    inquiry = (
        inquiry_pb2_grpc.InquiryServiceStub(w.agency.channel).QueryOpen(
            inquiry_pb2.QueryRequest(
                subject_code=subject,
                item_codes=[item],
                purpose="LOAN_APPROVAL",
                agreement_id="agr-zx-credit",
            ),
            metadata=metadata(w.h.token(w.agency)),
            timeout=10,
        )
        if subject == COMPANY
        else inquiry_pb2_grpc.InquiryServiceStub(w.portal.channel).QueryOwn(
            inquiry_pb2.OwnQueryRequest(item_codes=[item]),
            metadata=metadata(w.h.subject_token(w.portal, subject)),
            timeout=10,
        )
    )
    (pulled,) = w.exchange.pull(subject, items=[item])
    return {
        "inquiry": {r.record_id for r in inquiry.records},
        "sharing": {r.record_id for r in government.share(w.sharing, subject, item).records},
        "pull": {r.record_id for r in pulled.records},
    }


def everywhere(ids: set[str]) -> dict[str, set[str]]:
    return {path: ids for path in ("inquiry", "sharing", "pull")}


# --- the database --------------------------------------------------------------------------------


def database(w: World) -> dict[str, list[Any]]:
    """Every table's rows but the audit log's (and the leases background tasks renew); the
    audit entries by id."""
    with w.h.db.transaction(write=False) as session:
        rows = rows_but_the_log(session)
        rows["audit_entries"] = sorted(session.scalars(select(AuditEntryRow.id)))
    return rows


def entries(w: World, *methods: str) -> list[dict[str, Any]]:
    with w.h.db.transaction(write=False) as session:
        bodies = session.scalars(
            select(AuditEntryRow.body)
            .where(AuditEntryRow.method.in_(methods))
            .order_by(AuditEntryRow.seq)
        )
        return [json.loads(b) for b in bodies]


def refused(w: World, call: Callable[[], object]) -> tuple[grpc.StatusCode, str, str, list[Any]]:
    """The refusal's code, reason and message, and the audit entries it added as (caller,
    method, outcome, reasons): nothing else in the database changed."""
    before = database(w)
    with pytest.raises(grpc.RpcError) as caught:
        call()
    after = database(w)
    added = set(after.pop("audit_entries")) - set(before.pop("audit_entries"))
    assert after == before
    new = [
        (e["caller"], e["method"], e["outcome"], e["reasons"])
        for e in entries(w, "SubmitRestoration", "ApplyDeletion")
        if e["id"] in added
    ]
    assert len(new) == len(added)
    code, reason = status_of(caught.value)
    return code, reason, caught.value.details() or "", new


def archived_row(w: World, label: str) -> RecordRow:
    with w.h.db.transaction(write=False) as session:
        row = session.get(RecordRow, w.ids[label])
        assert row is not None
        session.expunge(row)
        return row


# --- Art 30: credit restoration ------------------------------------------------------------------


def test_a_restored_record_leaves_every_read_path_the_archive_keeps_it_and_again_is_the_same(
    w: World,
) -> None:
    rid = w.ids["pun"]
    assert readable(w, COMPANY, "ADM.PUNISHMENT") == everywhere({rid})
    feed = w.exchange.subscribe()
    next(feed)  # opened: the cursor of now
    pb = decision(w)

    first = restore(w, pb)

    now = w.h.clock.now
    assert answer(first)[:4] == (rid, "ADM.PUNISHMENT", now.replace(tzinfo=None), "restored")
    (withdrawn,), _ = read_changes(feed, 1)
    feed.cancel()
    assert (withdrawn.kind, withdrawn.record_id) == (Kind.KIND_RESTORED, rid)
    assert not withdrawn.HasField("record")
    assert readable(w, COMPANY, "ADM.PUNISHMENT") == everywhere(set())
    # The archive: the row out of service, its disclosure ended by the decision, and the
    # decision as signed.
    row = archived_row(w, "pun")
    assert (row.state, row.archive_reason, row.archived_at) == ("archived", "restored", now)
    decided_at = pb.decided_at.ToDatetime(tzinfo=UTC)
    assert row.disclosure_until == decided_at
    with w.h.db.transaction(write=False) as session:
        (kept,) = session.scalars(select(RestorationRow)).all()
        signed = signed_bytes("hubei-amr", "pun", pb.decision_number, decided_at, pb.basis)
        assert (kept.id, kept.record_id, kept.provider_id) == (
            first.audit_entry_id,
            rid,
            "hubei-amr",
        )
        assert (kept.document, kept.signature, kept.signer_kid) == (
            signed,
            pb.signature,
            w.amr.cert.x5t_s256,
        )
    (entry,) = entries(w, "SubmitRestoration")
    assert (entry["id"], entry["caller"], entry["outcome"], entry["items"]) == (
        first.audit_entry_id,
        "hubei-amr",
        "RESTORED",
        ["ADM.PUNISHMENT"],
    )
    assert entry["subject"] == row.subject_id

    # The same decision again (signed anew: ES256 signatures differ): the same answer, and
    # nothing written.
    before = database(w)
    w.h.clock.advance(hours=1)
    assert answer(restore(w, decision(w, decided_at=decided_at))) == answer(first)
    assert database(w) == before


def test_every_refused_restoration_changes_nothing_but_its_entry(w: World) -> None:
    now = w.h.clock.now
    occurred = now - timedelta(days=PUNISHMENT_DAYS_AGO)
    stranger = load_private_key(w.civil.cert.key_path)
    malformed = [
        (decision(w, number="x"), "DECISION_NUMBER_INVALID"),
        (decision(w, basis=" "), "MISSING_FIELD"),
        (decision(w, ""), "MISSING_FIELD"),
        (decision(w, decided_at=now + timedelta(seconds=1)), "INVALID_TIME"),
    ]
    no_time = decision(w)
    no_time.ClearField("decided_at")
    malformed.append((no_time, "MISSING_FIELD"))
    for pb, reason in malformed:  # refused before anything is read: not on record
        code, got, _, new = refused(w, lambda pb=pb: restore(w, pb))
        assert (code, got, new) == (INVALID, reason, []), reason

    forged = decision(w, signer=stranger)
    unknown_key = decision(w)
    unknown_key.key_id = "not-a-key"
    altered = decision(w)
    altered.basis = "something else"
    for pb in (forged, unknown_key, altered):
        code, reason, _, new = refused(w, lambda pb=pb: restore(w, pb))
        assert (code, reason, new) == (
            INVALID,
            "BAD_SIGNATURE",
            [("hubei-amr", "SubmitRestoration", "REFUSED", ["BAD_SIGNATURE"])],
        )

    # Another provider's record, and an id that names none: alike.
    others = decision(w, provider=w.civil)
    for call in (lambda: restore(w, decision(w, "no-such")), lambda: restore(w, others, w.civil)):
        code, reason, message, new = refused(w, call)
        assert (code, reason, message) == (
            NOT_FOUND,
            "RECORD_NOT_FOUND",
            "no record of that provider_record_id among yours",
        )
        assert [n[2:] for n in new] == [("REFUSED", ["RECORD_NOT_FOUND"])]

    code, reason, _, new = refused(w, lambda: restore(w, decision(w, "permit")))
    assert (code, reason) == (FAILED, "NOT_UNTRUSTWORTHY")
    assert new == [("hubei-amr", "SubmitRestoration", "REFUSED", ["NOT_UNTRUSTWORTHY"])]

    earliest = occurred + timedelta(days=90)  # a general punishment's shortest period
    for at in (earliest - timedelta(seconds=1), occurred - timedelta(days=1)):
        code, reason, message, new = refused(
            w, lambda at=at: restore(w, decision(w, decided_at=at))
        )
        assert (code, reason) == (FAILED, "RESTORATION_TOO_EARLY")
        assert earliest.strftime("%Y-%m-%dT%H:%M:%SZ") in message
        assert [n[2:] for n in new] == [("REFUSED", ["RESTORATION_TOO_EARLY"])]

    # Restored on the first day it may be; then another decision finds it out of service.
    restore(w, decision(w, decided_at=earliest))
    code, reason, _, new = refused(w, lambda: restore(w, decision(w, number="RD-2026-8")))
    assert (code, reason) == (FAILED, "NOT_IN_SERVICE")
    assert [n[2:] for n in new] == [("REFUSED", ["NOT_IN_SERVICE"])]


# --- Art 31: deletion on application -------------------------------------------------------------


def test_a_deleted_record_leaves_every_read_path_the_archive_keeps_it_and_again_is_the_same(
    w: World,
) -> None:
    rid = w.ids["vol"]
    assert readable(w, PERSON, "COM.VOLUNTEER") == everywhere({rid})
    feed = w.exchange.subscribe()
    next(feed)

    first = apply_deletion(w, rid)

    now = w.h.clock.now
    assert answer(first)[:4] == (rid, "COM.VOLUNTEER", now.replace(tzinfo=None), "deleted")
    (withdrawn,), _ = read_changes(feed, 1)
    feed.cancel()
    assert (withdrawn.kind, withdrawn.record_id, withdrawn.subject_code) == (
        Kind.KIND_DELETED,
        rid,
        PERSON,
    )
    assert not withdrawn.HasField("record")
    assert readable(w, PERSON, "COM.VOLUNTEER") == everywhere(set())
    row = archived_row(w, "vol")
    assert (row.state, row.archive_reason, row.archived_at) == ("archived", "deleted", now)
    assert row.payload  # kept, as the archive
    (entry,) = entries(w, "ApplyDeletion")
    assert (entry["id"], entry["caller"], entry["outcome"], entry["items"]) == (
        first.audit_entry_id,
        "self",
        "DELETED",
        ["COM.VOLUNTEER"],
    )
    assert entry["subject"] == row.subject_id

    before = database(w)
    w.h.clock.advance(hours=1)
    assert answer(apply_deletion(w, rid)) == answer(first)
    assert database(w) == before


def test_every_refused_deletion_changes_nothing_but_its_entry(w: World) -> None:
    code, reason, _, new = refused(w, lambda: apply_deletion(w, "rec_x/../y"))
    assert (code, reason, new) == (INVALID, "INVALID_ARGUMENT", [])  # malformed: not on record

    # Another subject's record is answered as one that does not exist.
    unknown = refused(w, lambda: apply_deletion(w, "rec_nosuchrecord"))
    anothers = refused(w, lambda: apply_deletion(w, w.ids["c_vol"]))
    for code, reason, message, new in (unknown, anothers):
        assert (code, reason, message) == (NOT_FOUND, "RECORD_NOT_FOUND", "no such record of yours")
        assert new == [("self", "ApplyDeletion", "REFUSED", ["RECORD_NOT_FOUND"])]

    code, reason, _, new = refused(w, lambda: apply_deletion(w, w.ids["permit"]))
    assert (code, reason) == (FAILED, "NOT_DELETABLE_ON_APPLICATION")
    assert new == [("self", "ApplyDeletion", "REFUSED", ["NOT_DELETABLE_ON_APPLICATION"])]

    # Out of service for another reason (its disclosure period ended): not deleted over it.
    with w.h.db.transaction() as session:
        row = session.get(RecordRow, w.ids["vol"])
        assert row is not None
        archive(session, [(row.id, row.item_code, row.subject_id)], PERIOD_ENDED, w.h.clock.now)
    code, reason, _, new = refused(w, lambda: apply_deletion(w, w.ids["vol"]))
    assert (code, reason) == (FAILED, "NOT_IN_SERVICE")
    assert new == [("self", "ApplyDeletion", "REFUSED", ["NOT_IN_SERVICE"])]
