"""A Node.js client against the real gateway: signatures made in another language verify.

tests/interop/client.mjs knows the gateway only from docs/canonical.md and the protos: it computes
the canonical bytes itself (its own JCS, `toISOString()` timestamps with milliseconds), signs with
WebCrypto and keys read by `jose`, and talks gRPC through `@grpc/grpc-js`. Its packages come from
the committed package-lock.json (`npm ci`, into tests/interop/node_modules, once per lockfile).
Skipped where `node` or `npm` is not installed.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.harness import PERSON, Harness, make_agreement

from credit_gateway.adapters.storage import consents as consent_store
from credit_gateway.adapters.storage.tables import RecordRow
from credit_gateway.domain.canonical import parse_json_object
from credit_gateway.domain.consent import ConsentTerms, artefact_bytes
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.records import Submission, WrittenNotice
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.services import operator as registry

HERE = Path(__file__).resolve().parent
PROTOS = HERE.parents[1] / "protos"
MIN_NODE = 20


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` binary, with the client's packages installed as the lockfile pins them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(f"the Node.js interop test needs `node` and `npm` (Node {MIN_NODE}+) on PATH")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE:
        pytest.skip(f"the Node.js interop test needs Node {MIN_NODE}+, found {version}")
    lock = HERE / "package-lock.json"
    stamp = HERE / "node_modules" / ".installed-from-lock"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    # Another test run in the same tree may be installing: one `npm ci` at a time.
    with lock.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.read_text() != wanted:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
            stamp.write_text(wanted)
    return node


def run_node(node: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(HERE / "client.mjs"), *args],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"the Node client failed:\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_node_client_signs_submits_consents_and_queries(
    node: str, harness: Harness, tmp_path: Path
) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    agency = h.add_participant("zx-credit", "credit-agency")
    portal = h.add_participant("realname-portal", "identity-provider")
    make_agreement(
        h,
        agency,
        agreement_id="agr-zx-credit",
        categories=("administrative_punishment", "judicial"),
        purposes=("LOAN_APPROVAL",),
    )

    # The subject makes its key in Node; the operator registers the public half.
    subject_key = tmp_path / "subject.jwk"
    made = run_node(node, "subject-key", str(subject_key))
    public_jwk = tmp_path / "subject.pub.jwk"
    public_jwk.write_text(json.dumps(made["public_jwk"]))
    assert registry.register_subject_key(h.settings, PERSON, public_jwk) == made["kid"]

    config = {
        "target": h.target,
        "protos": str(PROTOS),
        "ca": str(h.settings.ca_cert),
        "now_ms": int(h.clock.now.timestamp() * 1000),
        "subject": PERSON,
        "subject_key": str(subject_key),
        "provider": {
            "id": amr.id,
            "cert": str(amr.cert.cert_path),
            "key": str(amr.cert.key_path),
            "token": h.token(amr),
        },
        "portal": {
            "cert": str(portal.cert.cert_path),
            "key": str(portal.cert.key_path),
            "token": h.subject_token(portal, PERSON),
        },
        "agency": {
            "id": agency.id,
            "agreement": "agr-zx-credit",
            "cert": str(agency.cert.cert_path),
            "key": str(agency.cert.key_path),
            "token": h.token(agency),
        },
    }
    config_file = tmp_path / "node-client.json"
    config_file.write_text(json.dumps(config))
    out = run_node(node, "run", str(config_file))

    # (1) Both records accepted, the one with milliseconds (`...250Z`) and the whole second; and
    # the bytes Node signed are the bytes the gateway computes for them.
    assert out["submitted"]["accepted"] == 2, out["submitted"]
    signed = [parse_json_object(base64.b64decode(b)) for b in out["signed_records"]]
    assert signed[0]["occurred_at"].endswith(".250Z")
    assert "." not in signed[1]["occurred_at"]  # toISOString()'s ".000" dropped
    assert signed[0]["notice"]["delivered_at"].endswith(".125Z")
    assert [d["subject_kind"] for d in signed] == [None, "natural_person"]
    for doc, b64 in zip(signed, out["signed_records"], strict=True):
        notice = doc["notice"]
        ours = Submission(
            doc["provider"],
            doc["provider_record_id"],
            doc["item"],
            doc["subject"],
            doc["payload"],
            datetime.fromisoformat(doc["occurred_at"]),
            WrittenNotice(notice["number"], datetime.fromisoformat(notice["delivered_at"])),
            SubjectKind(doc["subject_kind"]) if doc["subject_kind"] else None,
        )
        assert ours.signing_bytes() == base64.b64decode(b64)
    # The notices are stored as Node sent them.
    with h.db.transaction(write=False) as session:
        stored = session.execute(
            select(RecordRow.notice_reference, RecordRow.notice_delivered_at).order_by(
                RecordRow.provider_record_id
            )
        ).all()
    assert [(n, canonical_timestamp(at, "at")) for n, at in stored] == [
        (d["notice"]["number"], d["notice"]["delivered_at"]) for d in signed
    ]

    # (2) The consent the subject signed with the sets in request order: granted on its
    # signature, and the gateway keeps as evidence exactly the bytes Node signed.
    assert out["consent"]["evidence"] == "subject_signature"
    node_artefact = base64.b64decode(out["artefact"])
    with h.db.transaction(write=False) as session:
        kept = consent_store.artefact(session, h.gateway.envelope, out["consent"]["id"])
    assert kept == node_artefact
    doc = parse_json_object(node_artefact)
    terms = ConsentTerms.from_document(doc["terms"])
    assert artefact_bytes(PERSON, terms) == node_artefact
    assert doc["terms"]["items"] == ["ADM.PUNISHMENT", "TAX.PAID"]
    assert doc["terms"]["data_range"][0].endswith(".125Z")

    # (3) The consented inquiry releases both records, as they were submitted.
    released = sorted(out["released"], key=lambda r: r["occurred_at"])
    assert [r["item_code"] for r in released] == ["ADM.PUNISHMENT", "ADM.PUNISHMENT"]
    assert [(r["occurred_at"], r["payload"]) for r in released] == sorted(
        (d["occurred_at"], d["payload"]) for d in signed
    )
