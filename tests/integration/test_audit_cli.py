"""`credit-gateway audit ...` on a log the real server wrote, on every database: the published
key, evidence bundles checked offline, the log checked after tampering by SQL behind the
gateway's back, and retention.

The server's integrator is held back (an hour between runs), so what integrates is what the
commands integrate: export integrates what waits, verify never does."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select
from support.harness import COMPANY, PERSON, Harness, make_agreement, metadata

from credit_gateway.adapters.grpc.v1 import inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.adapters.storage.tables import AuditEntryRow
from credit_gateway.cli import audit as audit_cli
from credit_gateway.cli.main import main
from credit_gateway.crypto.master import MasterKey
from credit_gateway.crypto.notes import COSIGNATURE_V1, Note, Signer, cosign
from credit_gateway.domain.audit import leaf_hash
from credit_gateway.domain.evidence import Bundle
from credit_gateway.errors import FailedPrecondition
from credit_gateway.services.audit import log_signer

pytestmark = pytest.mark.usefixtures("no_outside_settings")


SCRIPT = Path(sys.executable).with_name("credit-gateway")
RETENTION = timedelta(days=3 * 365)


@pytest.fixture
def harness(paused_harness: Harness) -> Harness:
    return paused_harness  # each test integrates when it means to


@dataclass
class Ran:
    code: int
    out: str
    err: str


@dataclass
class Operator:
    """The operator's command line beside the running gateway (in this process)."""

    harness: Harness
    config: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> Ran:
        self.capsys.readouterr()
        code = main(["--config", str(self.config), "audit", *argv])
        out, err = self.capsys.readouterr()
        return Ran(code, out, err)


@pytest.fixture
def operator(harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Operator:
    return Operator(harness, harness.write_config(tmp_path / "gateway.toml"), capsys)


def offline(tmp_path: Path, *argv: str) -> Ran:
    """`audit verify-bundle` as an auditor runs it: the console script, in a directory of its
    own with no var/, no certs/ and no settings."""
    where = tmp_path / "auditor"
    where.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    result = subprocess.run(
        [str(SCRIPT), "audit", "verify-bundle", *argv],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sorted(p.name for p in where.iterdir()) == [], "verify-bundle wrote something"
    return Ran(result.returncode, result.stdout, result.stderr)


def refused(ran: Ran) -> str:
    """The one line of a refusal (exit 2, the CLI's convention)."""
    assert ran.code == 2, ran
    lines = ran.err.splitlines()
    assert len(lines) == 1, ran.err
    assert lines[0].startswith("credit-gateway: error: "), lines[0]
    return lines[0]


def release(h: Harness, *subjects: str) -> None:
    """One QueryOpen per subject named, through the real server."""
    agency = h.participants.get("zx-credit")
    if agency is None:
        agency = h.add_participant("zx-credit", "credit-agency")
        make_agreement(h, agency, categories=("registration",))
    stub = inquiry_pb2_grpc.InquiryServiceStub(agency.channel)
    for code in subjects:
        query = inquiry_pb2.QueryRequest(
            subject_code=code, purpose="LOAN_APPROVAL", agreement_id="agr-zx-credit"
        )
        stub.QueryOpen(query, metadata=metadata(h.token(agency)), timeout=5)


def subject_id(h: Harness, code: str) -> str:
    return h.gateway.audit.subject_id(h.gateway.subject_lookup(code))


def published_key(operator: Operator) -> str:
    ran = operator("key")
    assert ran.code == 0, ran.err
    lines = dict(line.split(None, 1) for line in ran.out.splitlines() if line.startswith("vkey"))
    return lines["vkey"].strip()


def export(operator: Operator, tmp_path: Path, code: str, name: str = "bundle.json") -> Path:
    out = tmp_path / name
    ran = operator("export", "--subject", code, "--out", str(out))
    assert ran.code == 0, ran.err
    return out


def stored_entries(h: Harness) -> list[tuple[object, ...]]:
    with h.db.transaction(write=False) as session:
        rows = session.execute(
            select(
                AuditEntryRow.seq, AuditEntryRow.body, AuditEntryRow.leaf_hash,
                AuditEntryRow.leaf_index, AuditEntryRow.pruned,
            ).order_by(AuditEntryRow.seq)
        )  # fmt: skip
        return [
            (seq, bytes(body), bytes(leaf), index, pruned)
            for seq, body, leaf, index, pruned in rows
        ]


# --- the key and evidence bundles ---------------------------------------------------------------


def test_an_exported_bundle_verifies_offline_with_the_published_key(
    harness: Harness, operator: Operator, tmp_path: Path
) -> None:
    release(harness, COMPANY, PERSON, COMPANY, COMPANY)
    vkey = published_key(operator)
    assert vkey == harness.gateway.audit.verifier.vkey()
    waiting = len(stored_entries(harness))
    ran = operator("export", "--subject", COMPANY, "--out", str(tmp_path / "bundle.json"))
    assert ran.code == 0, ran.err
    assert f"integrated {waiting} waiting entries first" in ran.out  # none had been integrated
    assert "3 entries of the subject" in ran.out
    bundle = Bundle.from_json((tmp_path / "bundle.json").read_bytes())
    company = subject_id(harness, COMPANY)
    assert [e.document()["subject"] for e in bundle.entries] == [company] * 3
    with harness.db.transaction(write=False) as session:
        theirs = session.scalars(
            select(AuditEntryRow.leaf_index).where(AuditEntryRow.subject_id == company)
        ).all()
    assert sorted(e.leaf_index for e in bundle.entries) == sorted(theirs)
    assert bundle.witness_keys == ()  # no witnesses configured

    checked = offline(tmp_path, str(tmp_path / "bundle.json"), "--log-key", vkey)
    assert checked.code == 0, checked.err
    assert f"size {waiting}" in checked.out
    for entry in bundle.entries:
        doc = entry.document()
        line = f"leaf {entry.leaf_index}  {doc['at']}  zx-credit  QueryOpen  {doc['outcome']}"
        assert line in checked.out
    assert "compare its id" not in checked.out

    # Without --log-key it uses the bundle's own key, and says it must be compared.
    own = offline(tmp_path, str(tmp_path / "bundle.json"))
    assert own.code == 0, own.err
    assert "compare its id with the one the center publishes" in own.out
    assert harness.gateway.audit.verifier.key_id.hex() in own.out


def test_a_bundle_is_refused_under_another_key_or_a_quorum_it_lacks(
    harness: Harness, operator: Operator, tmp_path: Path
) -> None:
    release(harness, COMPANY)
    bundle = export(operator, tmp_path, COMPANY)
    origin = harness.settings.effective_audit_origin
    another_log = log_signer(MasterKey(os.urandom(32)), origin).verifier.vkey()
    line = refused(offline(tmp_path, str(bundle), "--log-key", another_log))
    assert "the checkpoint does not verify" in line
    name, key_id, key = another_log.split("+", 2)
    line = refused(offline(tmp_path, str(bundle), "--log-key", f"{name}x+{key_id}+{key}"))
    assert "--log-key: the verifier key's id or type does not match its key" in line
    witness = published_key(operator)  # a key that never cosigned it
    line = refused(offline(tmp_path, str(bundle), "--witness-key", witness, "--quorum", "1"))
    assert "cosigned by 0 of the trusted witnesses, fewer than 1" in line


def test_a_bundle_carries_the_stored_cosignatures_and_the_witnesses_keys(
    harness: Harness, operator: Operator, tmp_path: Path
) -> None:
    release(harness, COMPANY)
    audit = harness.gateway.audit
    audit.integrate_all()
    witness = Signer("witness.test/w", COSIGNATURE_V1, Ed25519PrivateKey.generate())
    latest = audit.checkpoint()
    at = int(harness.clock.now.timestamp())
    audit.add_cosignatures(latest.size, [cosign(Note.parse(latest.note), witness, at)])
    vkey = witness.verifier.vkey()
    with operator.config.open("a") as config:
        config.write(f'[[witnesses]]\nurl = "https://witness.test"\nvkey = "{vkey}"\n')
    bundle = tmp_path / "bundle.json"
    ran = operator("export", "--subject", COMPANY, "--out", str(bundle))
    assert ran.code == 0, ran.err
    assert "cosigned by 1 of the 1 witnesses" in ran.out
    assert Bundle.from_json(bundle.read_bytes()).witness_keys == (vkey,)
    log_key = published_key(operator)
    checked = offline(
        tmp_path, str(bundle), "--log-key", log_key, "--witness-key", vkey, "--quorum", "1"
    )
    assert checked.code == 0, checked.err
    assert f"cosigned    witness.test/w at {harness.clock.now.isoformat()}" in checked.out

    # A checkpoint export made by integrating is no witness's yet, and it says so.
    release(harness, COMPANY)
    ran = operator("export", "--subject", COMPANY, "--out", str(tmp_path / "newer.json"))
    assert ran.code == 0, ran.err
    assert "cosigned by 0 of the 1 witnesses" in ran.out


def test_an_unknown_subject_has_no_bundle(operator: Operator, tmp_path: Path) -> None:
    line = refused(operator("export", "--subject", COMPANY, "--out", str(tmp_path / "b.json")))
    assert "no subject of that code is on record" in line
    assert not (tmp_path / "b.json").exists()


# --- tampering behind the gateway's back ----------------------------------------------------


def _change(h: Harness, index: int) -> None:
    with h.db.transaction() as session:
        row = session.scalars(select(AuditEntryRow).where(AuditEntryRow.leaf_index == index)).one()
        row.body = bytes(row.body).replace(b'"withheld":', b'"withheld": ')


def _delete(h: Harness, index: int) -> None:
    with h.db.transaction() as session:
        session.execute(delete(AuditEntryRow).where(AuditEntryRow.leaf_index == index))


def _insert(h: Harness, index: int) -> None:
    """A copy of an entry, as a DBA would add one: its leaf right, but no MAC."""
    with h.db.transaction() as session:
        row = session.scalars(select(AuditEntryRow).where(AuditEntryRow.leaf_index == index)).one()
        body = bytes(row.body).replace(row.id.encode(), b"aud-forged")
        session.add(
            AuditEntryRow(
                id="aud-forged", at=row.at, caller=row.caller, method=row.method,
                subject_id=row.subject_id, consent_id=None, agreement_id=row.agreement_id,
                outcome=row.outcome, body=body, leaf_hash=leaf_hash(body), mac=None,
            )
        )  # fmt: skip


def _reorder(h: Harness, index: int) -> None:
    """Two entries' places swapped, each still hashing to its own leaf."""
    with h.db.transaction() as session:
        rows = session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.leaf_index.in_([index, index + 1]))
        ).all()
        swapped = {row.seq: 2 * index + 1 - int(row.leaf_index or 0) for row in rows}
        for row in rows:
            row.leaf_index = None  # free both indexes first (they are unique)
        session.flush()
        for row in rows:
            row.leaf_index = swapped[row.seq]


# What each does, and the first inconsistency `audit verify` names.
TAMPERING = {
    "change": (_change, "leaf 1: the entry does not hash to its leaf"),
    "delete": (_delete, "leaf 1: no entry has this index"),
    "insert": (_insert, "entry seq {seq}: waiting to be integrated without a valid MAC or leaf"),
    "reorder": (_reorder, "leaf 1: not the entry the tree holds at this index"),
}


@pytest.mark.parametrize("tamper", TAMPERING.keys())
def test_tampering_by_sql_is_named_and_an_earlier_bundle_still_verifies(
    harness: Harness, operator: Operator, tmp_path: Path, tamper: str
) -> None:
    release(harness, COMPANY, COMPANY, PERSON, COMPANY)
    bundle = export(operator, tmp_path, COMPANY)
    held = operator("verify")
    assert held.code == 0, held.err
    size = len(stored_entries(harness))
    assert f"the log holds: {size} entries in the tree, 1 checkpoints verified" in held.out
    vkey = published_key(operator)

    change, names = TAMPERING[tamper]
    change(harness, 1)
    first = names.format(seq=max(row[0] for row in stored_entries(harness)))
    line = refused(operator("verify"))
    assert line.startswith(f"credit-gateway: error: the audit log does not hold: {first} (")
    assert line.endswith(" in all)")
    if tamper == "insert":
        # Once the integrator has met it, it is quarantined, never in the tree, and named.
        harness.gateway.audit.integrate_all()
        assert "quarantined: no valid MAC or leaf" in refused(operator("verify"))

    assert offline(tmp_path, str(bundle), "--log-key", vkey).code == 0
    document = json.loads(bundle.read_text())
    entry = document["entries"][0]
    body = base64.b64decode(entry["entry"]).replace(b"QueryOpen", b"QueryShared")
    entry["entry"] = base64.b64encode(body).decode()
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    line = refused(offline(tmp_path, str(edited), "--log-key", vkey))
    assert f"entry {entry['leaf_index']} is not in the log" in line


# --- retention ----------------------------------------------------------------------------------


def test_prune_is_refused_inside_retention_and_past_it_keeps_proofs(
    harness: Harness, operator: Operator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release(harness, COMPANY, COMPANY, PERSON)
    bundle_file = export(operator, tmp_path, COMPANY)
    vkey = published_key(operator)
    monkeypatch.setattr(audit_cli, "utcnow", harness.clock)
    before = (harness.clock.now + timedelta(days=1)).date().isoformat()
    stored = stored_entries(harness)

    line = refused(operator("prune", "--before", before))  # RETENTION_NOT_REACHED
    assert "entries are kept 1095 days (Art 19)" in line
    with pytest.raises(FailedPrecondition) as refusal:
        harness.gateway.audit.prune(harness.clock.now)
    assert refusal.value.reason == "RETENTION_NOT_REACHED"
    assert stored_entries(harness) == stored

    harness.clock.advance(days=RETENTION.days + 2)
    ran = operator("prune", "--before", before)
    assert ran.code == 0, ran.err
    assert f"pruned {len(stored)} entries" in ran.out
    *after, prune = stored_entries(harness)
    assert [(seq, b"", leaf, index, True) for seq, _, leaf, index, _ in stored] == after
    # The prune is itself on record: who, when, up to when and how many.
    entry = json.loads(prune[1])
    assert (entry["caller"], entry["method"], entry["outcome"]) == (
        "operator", "audit.prune", "PRUNED",
    )  # fmt: skip
    assert entry["items"][1] == str(len(stored))
    held = operator("verify")
    assert held.code == 0, held.err
    assert f"{len(stored)} pruned past retention" in held.out

    # The bundle's proofs are the log's own still: the pruned leaves' hashes are kept.
    assert offline(tmp_path, str(bundle_file), "--log-key", vkey).code == 0
    bundle = Bundle.from_json(bundle_file.read_bytes())
    size = harness.gateway.audit.checkpoint().size
    for entry in bundle.entries:
        proof = harness.gateway.audit.inclusion(entry.leaf_index, None, size)
        assert (proof.leaf_hash, tuple(proof.hashes)) == (leaf_hash(entry.body), entry.proof)
    again = operator("export", "--subject", COMPANY, "--out", str(tmp_path / "later.json"))
    assert again.code == 0, again.err
    assert "0 entries of the subject" in again.out
    assert "2 pruned past retention left out" in again.out
