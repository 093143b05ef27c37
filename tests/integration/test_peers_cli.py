"""`credit-gateway peers add|list` and `outbox list|retry|purge`, as the operator runs them:
what they store and print, their audit entries, and every refusal (a clear one-line error,
exit 2, nothing changed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support.two_gateways import (
    NATIONAL,
    Pair,
    add_peer,
    national_database,  # noqa: F401 - the fixture national_url
    outbox_rows,
    two_gateways,
)

from credit_gateway.adapters.storage import outbox
from credit_gateway.adapters.storage.tables import AuditEntryRow, OutboxRow, PeerRow
from credit_gateway.devpki import pki
from credit_gateway.services.delivery import client_key_id

pytestmark = pytest.mark.usefixtures("no_outside_settings")


@pytest.fixture
def pair(tmp_path: Path, database_url: str, national_url: str) -> Iterator[Pair]:
    """The two gateways registered at each other, no peer added yet; deliveries paused."""
    paused = {"outbox_poll_ms": 3_600_000}
    with two_gateways(
        tmp_path, database_url, national_url, peers=False, provincial=paused, national=paused
    ) as linked:
        yield linked


def state(db: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """Peers, outbox rows and operator entries on peers and the outbox: what a refusal leaves."""
    with db.transaction(write=False) as session:
        peer_rows = [tuple(r) for r in session.execute(select(PeerRow.name, PeerRow.purpose))]
        rows = [
            tuple(r)
            for r in session.execute(
                select(
                    OutboxRow.id, OutboxRow.state, OutboxRow.attempts, OutboxRow.next_at
                ).order_by(OutboxRow.id)
            )
        ]
        entries = session.scalar(
            select(func.count())
            .select_from(AuditEntryRow)
            .where(AuditEntryRow.method.in_(["peers.add", "outbox.retry", "outbox.purge"]))
        )
    return peer_rows, rows, int(entries or 0)


def command(run: Any, *args: str) -> int:
    """A CLI command's exit status, a usage error's (argparse exits) included."""
    try:
        return int(run(*args))
    except SystemExit as exit_:
        return int(exit_.code or 0)


def refused(capsys: pytest.CaptureFixture[str], code: int, *words: str) -> str:
    """The command refused: exit 2 and one line on stderr holding `words`."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("credit-gateway: error: "), err
    for word in words:
        assert word in err, err
    return err


def test_peers_add_stores_the_key_sealed_prints_the_key_id_and_is_on_record(
    pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    prov, nat = pair.provincial, pair.national
    credential = pair.provincial_at_national
    assert add_peer(prov, nat, credential) == 0
    out = capsys.readouterr().out
    kid = client_key_id(credential.cert.cert_path.read_bytes())
    assert kid == credential.cert.x5t_s256  # the kid the national platform registered for us
    assert f"our origin key id there: {kid}" in out
    assert "for LOAN_APPROVAL" in out  # the one purpose its push agreement names
    key_pem = credential.cert.key_path.read_bytes()
    with prov.db.transaction(write=False) as session:
        row = session.get(PeerRow, "national")
        assert row is not None
        assert (row.participant_id, row.client_id) == (NATIONAL, "hubei-platform")
        assert b"PRIVATE KEY" not in bytes(row.key_sealed)
        assert key_pem.split(b"\n")[1] not in bytes(row.key_sealed)
        [body] = session.scalars(
            select(AuditEntryRow.body).where(AuditEntryRow.method == "peers.add")
        )
    assert b'"caller":"operator"' in body
    assert b'"items":["national","cn-platform"]' in body
    assert prov.peers("list") == 0
    listed = capsys.readouterr().out
    assert f"national  participant={NATIONAL}" in listed
    assert f"key_id={kid}" in listed
    assert "PRIVATE" not in listed
    assert "peers: 1" in listed


def _add(pair: Pair, **changes: str) -> int:
    prov, nat = pair.provincial, pair.national
    cert = pair.provincial_at_national.cert
    options = {
        "--participant": NATIONAL,
        "--grpc": nat.harness.target,
        "--token-url": f"https://127.0.0.1:{nat.harness.running.oauth_port}/token",
        "--client-id": "hubei-platform",
        "--ca": str(nat.certs / "ca.pem"),
        "--cert": str(cert.cert_path),
        "--key": str(cert.key_path),
    }
    name = changes.pop("name", "national")
    options.update(changes)
    return command(prov.peers, "add", name, *[part for item in options.items() for part in item])


def test_every_refusal_of_peers_add_is_clear_and_stores_nothing(
    pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prov = pair.provincial
    prov.harness.add_participant("zx-credit", "credit-agency")
    pki.init_pki(tmp_path / "other-certs")
    other = pki.issue_participant(tmp_path / "other-certs", "someone", "provincial-platform")
    text = tmp_path / "not-pem.txt"
    text.write_text("hello\n")
    before = state(prov.db)
    cases: list[tuple[dict[str, str], tuple[str, ...]]] = [
        ({"--participant": "zx-credit"}, ("zx-credit is a credit-agency", "platform")),
        ({"--participant": "nobody"}, ("no participant nobody",)),
        ({"--key": str(other.key_path)}, ("is not the key of the certificate",)),
        ({"--key": str(text)}, ("not-pem.txt is not an unencrypted PEM private key",)),
        ({"--cert": str(text)}, ("not-pem.txt holds no PEM certificate",)),
        ({"--ca": str(tmp_path / "missing.pem")}, ("missing.pem", "No such file")),
        ({"--ca": str(text)}, ("holds no PEM certificate",)),
        ({"--token-url": "http://127.0.0.1/token"}, ("an https:// URL",)),
        ({"--grpc": "localhost"}, ("HOST:PORT",)),
        ({"--client-id": ""}, ("client-id",)),
        ({"name": "Bad Name"}, ("lower-case letters",)),
        ({"--purpose": " LOAN_APPROVAL"}, ("purpose",)),
    ]
    for changes, words in cases:
        refused(capsys, _add(pair, **changes), *words)
        assert state(prov.db) == before, changes
    # Once added, the same name again, or the same participant under another name.
    assert _add(pair) == 0
    capsys.readouterr()
    after = state(prov.db)
    refused(capsys, _add(pair), "peer national exists")
    refused(capsys, _add(pair, name="national-2"), "already the peer national")
    assert state(prov.db) == after


def test_peers_add_without_a_purpose_needs_exactly_one_agreed(
    pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    from support.harness import make_agreement

    prov = pair.provincial
    make_agreement(
        prov.harness, pair.national_at_provincial, agreement_id="agr-second",
        operations=("push",), items=("ADM.PUNISHMENT",), purposes=("CONTRACT_DUE_DILIGENCE",),
    )  # fmt: skip
    before = state(prov.db)
    refused(capsys, _add(pair), "give --purpose", "CONTRACT_DUE_DILIGENCE", "LOAN_APPROVAL")
    assert state(prov.db) == before
    assert _add(pair, **{"--purpose": "CONTRACT_DUE_DILIGENCE"}) == 0


def _queue(pair: Pair, n: int) -> list[str]:
    """`n` records queued for the peer "national" (the worker paused): their entry ids."""
    assert add_peer(pair.provincial, pair.national, pair.provincial_at_national) == 0
    pair.provincial.submit(pair.provincial.records(n, subjects=2))
    return [r.id for r in outbox_rows(pair.provincial.db)]


def _set(db: Any, ids: list[str], **values: Any) -> None:
    from sqlalchemy import update

    with db.transaction() as session:
        session.execute(update(OutboxRow).where(OutboxRow.id.in_(ids)).values(**values))


def test_outbox_list_retry_and_purge(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    prov = pair.provincial
    ids = _queue(pair, 4)
    now = pair.clock.now
    _set(prov.db, ids[:2], state=outbox.DEAD, attempts=8, last_error="after 8 attempts: down")
    _set(prov.db, ids[2:3], state=outbox.DELIVERED, delivered_at=now - timedelta(days=10))
    capsys.readouterr()
    assert prov.outbox("list", "--state", "dead", "--peer", "national") == 0
    out = capsys.readouterr().out
    assert sorted(line.split()[0] for line in out.splitlines()[:-1]) == sorted(ids[:2])
    assert "last_error=after 8 attempts: down" in out
    assert out.splitlines()[-1] == (
        "outbox: 2 listed; in all 1 pending, 1 delivered, 2 dead, 0 withheld"
    )
    # One dead entry by its id, then every other dead one of the peer.
    assert prov.outbox("retry", ids[0]) == 0
    assert "1 dead entries pending again" in capsys.readouterr().out
    assert prov.outbox("retry", "--peer", "national") == 0
    assert "1 dead entries pending again" in capsys.readouterr().out
    rows = {r.id: r for r in outbox_rows(prov.db)}
    for entry_id in ids[:2]:
        assert (rows[entry_id].state, rows[entry_id].attempts) == (outbox.PENDING, 0)
        assert rows[entry_id].last_error is None
        assert rows[entry_id].next_at <= pair.clock.now
    # Purge removes delivered entries before the date, and nothing else whatever its age.
    _set(prov.db, ids[3:], state=outbox.DEAD, next_at=now - timedelta(days=30))
    assert (
        prov.outbox("purge", "--delivered-before", (now - timedelta(days=5)).date().isoformat())
        == 0
    )
    assert "purged 1 entries" in capsys.readouterr().out
    assert sorted(r.id for r in outbox_rows(prov.db)) == sorted([*ids[:2], ids[3]])
    with prov.db.transaction(write=False) as session:
        methods = list(
            session.scalars(
                select(AuditEntryRow.method)
                .where(AuditEntryRow.method.like("outbox.%"))
                .order_by(AuditEntryRow.seq)
            )
        )
    assert methods == ["outbox.retry", "outbox.retry", "outbox.purge"]


def test_every_refusal_of_the_outbox_commands_is_clear_and_changes_nothing(
    pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    prov = pair.provincial
    ids = _queue(pair, 3)
    _set(prov.db, ids[:1], state=outbox.DEAD, attempts=8)
    capsys.readouterr()
    before = state(prov.db)
    future = (pair.clock.now + timedelta(days=2)).date().isoformat()
    for args, words in [
        (("retry", ids[0], ids[1]), ("not a dead entry", ids[1], "nothing was retried")),
        (("retry", "obx-none"), ("not a dead entry: obx-none",)),
        (("retry", "--peer", "nobody"), ("no peer nobody",)),
        (("retry", "--peer", "nobody", ids[0]), ("no peer nobody",)),
        (("purge", "--delivered-before", future), ("lies in the future",)),
        (("purge", "--delivered-before", "yesterday"), ("not an ISO 8601 date",)),
        (("purge", "--delivered-before", "2026-01-01T00:00:00"), ("needs a UTC offset",)),
        (("purge",), ("--delivered-before",)),
        (("purge", "--state", "dead", "--delivered-before", "2026-01-01"), ("--state",)),
        (("list", "--peer", "nobody"), ("no peer nobody",)),
        (("list", "--state", "lost"), ("invalid choice",)),
        (("list", "--limit", "0"), ("not a count",)),
    ]:
        refused(capsys, command(prov.outbox, *args), *words)
        assert state(prov.db) == before, args
