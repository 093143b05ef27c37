"""Every `credit-gateway` subcommand, given bad input, says what is wrong in one line on stderr
and exits 2, with no traceback and nothing changed: each runs as the operator runs it (the
console script, in a subprocess) against an initialised home with SQLite."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import credit_gateway
from credit_gateway.cli.main import build_parser
from credit_gateway.domain.agreements import Agreement, Operation, Quotas
from credit_gateway.domain.catalog import DisclosureLevel
from credit_gateway.exchange import agreements as signing

SCRIPT = Path(sys.executable).with_name("credit-gateway")
CATALOG_FILE = Path(credit_gateway.__file__).parent / "data" / "catalog.json"
COMPANY = "91350100M000100Y43"  # a valid USCC (GB 32100)
PERSON = "11010519491231002X"  # a valid resident identity number (GB 11643)


def subcommands(parser: argparse.ArgumentParser) -> set[tuple[str, ...]]:
    """Every command line's leading words, down to the leaves; a positional with choices (as
    `participants add|suspend|...`) counts as one more level. argparse has no public API for
    its tree, hence the private attributes."""
    found: set[tuple[str, ...]] = set()

    def walk(node: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        for action in node._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, (*words, name))
                return
        positional = [a.choices for a in node._actions if not a.option_strings and a.choices]
        if positional:
            found.update((*words, str(choice)) for choice in positional[0])
        else:
            found.add(words)

    walk(parser, ())
    return found


# --- the bad inputs -----------------------------------------------------------------------------

Setup = Callable[[Path], None]


def _nothing(root: Path) -> None:
    pass


def _write(name: str, text: str) -> Setup:
    def setup(root: Path) -> None:
        (root / name).write_text(text)

    return setup


def _remove(name: str) -> Setup:
    def setup(root: Path) -> None:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    return setup


def _both(*setups: Setup) -> Setup:
    def setup(root: Path) -> None:
        for each in setups:
            each(root)

    return setup


def _catalog_with_a_lowercase_code(root: Path) -> None:
    document = json.loads(CATALOG_FILE.read_text())
    document["items"][0]["code"] = "reg.enterprise"
    (root / "catalog.json").write_text(json.dumps(document))


def _maintain_lease_held(root: Path) -> None:
    """Another replica's serve runs the time rules until 2999."""
    with closing(sqlite3.connect(root / "var" / "gateway.db")) as db, db:
        db.execute(
            "INSERT INTO runner_leases (name, holder, until) "
            "VALUES ('maintain', 'replica-b', '2999-01-01 00:00:00.000000')"
        )


def _draft(**changes: Any) -> Setup:
    """An unsigned agreement file, as `agreements draft` writes it, with `changes` made."""

    def setup(root: Path) -> None:
        now = datetime.now(UTC)
        agreement = Agreement(
            id="agr-1",
            counterparty="zx-credit",
            operations=frozenset({Operation.INQUIRY}),
            items=frozenset(),
            categories=frozenset(),
            purposes=frozenset({"LOAN_APPROVAL"}),
            levels=frozenset({DisclosureLevel.OPEN}),
            subject_kinds=frozenset(),
            quotas=Quotas(10, 10),
            valid_from=now,
            valid_until=now + timedelta(days=365),
        )
        (root / "draft.json").write_text(json.dumps({**signing.draft(agreement), **changes}))

    return setup


BAD_MASTER_KEY = _write("var/master.key", "not hex\n")
BAD_CONFIG = {"CREDIT_GATEWAY_CONFIG": "gateway.toml"}
NOT_TOML = _write("gateway.toml", "this is = not = toml\n")
DRAFT = (
    *("agreements", "draft", "--id", "agr-1", "--counterparty", "zx-credit"),
    *("--operations", "inquiry", "--purposes", "LOAN_APPROVAL", "--levels", "open"),
    *("--out", "draft.json"),  # must not appear
)
ADD = ("participants", "add", "--id", "zx-credit", "--kind", "providing-unit", "--name", "ZX")


@dataclass(frozen=True)
class Bad:
    argv: tuple[str, ...]
    says: str  # in the one line
    setup: Setup = _nothing
    env: Mapping[str, str] = field(default_factory=dict)


CASES: dict[str, Bad] = {
    # The master key is read before the PKI is made: the missing certs stay missing.
    "init-bad-master-key": Bad(
        ("init",), "is not 64 hex digits", _both(_remove("certs"), BAD_MASTER_KEY)
    ),
    "serve-bad-address": Bad(
        ("serve",),
        "grpc_address must be HOST:PORT",
        env={"CREDIT_GATEWAY_GRPC_ADDRESS": "localhost"},
    ),
    "serve-too-many-processes": Bad(("serve", "--processes", "65"), "between 1 and 64"),
    "serve-processes-on-an-ephemeral-port": Bad(
        ("serve", "--processes", "2"),
        "needs a fixed grpc_address port",
        env={"CREDIT_GATEWAY_GRPC_ADDRESS": "127.0.0.1:0"},
    ),
    "db-upgrade-bad-driver": Bad(
        ("db", "upgrade"),
        "driver 'nosuchdb' is not supported",
        env={"CREDIT_GATEWAY_DATABASE_URL": "nosuchdb://x"},
    ),
    "certs-init-half-a-ca": Bad(("certs", "init"), "refusing to guess", _remove("certs/ca.key")),
    "certs-issue-bad-name": Bad(
        ("certs", "issue", "Not_A_Name", "--kind", "credit-agency"), "invalid participant name"
    ),
    "certs-sign-not-a-csr": Bad(
        ("certs", "sign", "agency.csr", "--name", "zx-credit", "--kind", "credit-agency"),
        "not a PEM certificate signing request",
        _write("agency.csr", "hello"),
    ),
    "keys-rotate-bad-master-key": Bad(("keys", "rotate"), "is not 64 hex digits", BAD_MASTER_KEY),
    "catalog-load-not-json": Bad(
        ("catalog", "load", "bad.json"), "bad.json: not JSON", _write("bad.json", "{")
    ),
    "catalog-load-not-an-object": Bad(
        ("catalog", "load", "list.json"), "list.json: not a JSON object", _write("list.json", "[]")
    ),
    "catalog-load-not-a-catalog": Bad(
        ("catalog", "load", "v.json"), "malformed catalog", _write("v.json", '{"version": "9"}')
    ),
    "catalog-load-bad-item": Bad(
        ("catalog", "load", "catalog.json"), "item code", _catalog_with_a_lowercase_code
    ),
    "catalog-load-missing-file": Bad(
        ("catalog", "load", "missing.json"), "missing.json: No such file or directory"
    ),
    "catalog-load-a-directory": Bad(("catalog", "load", "var"), "var: Is a directory"),
    "participants-add-bad-org-code": Bad(
        (*ADD, "--org-code", "123", "--cert", "certs/server.pem"), "org_code: "
    ),
    "participants-add-missing-cert": Bad(
        (*ADD, "--org-code", COMPANY, "--cert", "missing.pem"), "not a readable PEM certificate"
    ),
    "participants-add-bad-jwks": Bad(
        (*ADD, "--org-code", COMPANY, "--cert", "certs/server.pem", "--jwks", "keys.json"),
        "keys.json is not a JWK Set",
        _write("keys.json", '{"keys": [{"kty": "EC"}]}'),
    ),
    "participants-add-missing-options": Bad(
        ("participants", "add", "--id", "zx-credit"), "needs --kind, --org-code, --name"
    ),
    "participants-add-licence-without-end": Bad(
        (*ADD, "--org-code", COMPANY, "--licence-number", "L-1"), "needs --licence-valid-until"
    ),
    "participants-suspend-unknown": Bad(
        ("participants", "suspend", "--id", "nobody"), "no participant nobody"
    ),
    "participants-suspend-no-id": Bad(("participants", "suspend"), "needs --id"),
    "participants-licence-bad-date": Bad(
        ("participants", "licence", "--id", "zx-credit", "--licence-valid-until", "next week"),
        "'next week' is not an ISO 8601 date or time",
    ),
    "participants-list-bad-config": Bad(
        ("participants", "list"), "is not valid TOML", NOT_TOML, BAD_CONFIG
    ),
    "subjects-register-key-bad-code": Bad(
        ("subjects", "register-key", "123", "--jwk", "key.jwk"), "code: resident identity number"
    ),
    "subjects-register-key-not-json": Bad(
        ("subjects", "register-key", PERSON, "--jwk", "key.jwk"),
        "key.jwk: not JSON",
        _write("key.jwk", "{"),
    ),
    "subjects-register-key-not-a-jwk": Bad(
        ("subjects", "register-key", PERSON, "--jwk", "key.jwk"),
        "key.jwk is not an EC JWK",
        _write("key.jwk", "{}"),
    ),
    "agreements-draft-reversed-window": Bad(
        (*DRAFT, "--valid-from", "2026-03-01T00:00:00Z", "--valid-until", "2026-02-01T00:00:00Z"),
        "agreement ends before it starts",
    ),
    "agreements-draft-naive-time": Bad(
        (*DRAFT, "--valid-from", "2026-03-01T00:00:00", "--valid-until", "2027-03-01T00:00:00Z"),
        "--valid-from must carry a UTC offset",
    ),
    "agreements-draft-not-a-time": Bad(
        (*DRAFT, "--valid-from", "2026-03-01T00:00:00Z", "--valid-until", "next year"),
        "--valid-until is not an ISO 8601 timestamp",
    ),
    "agreements-sign-not-json": Bad(
        ("agreements", "sign", "bad.json", "--as-center"),
        "bad.json: not JSON",
        _write("bad.json", "{"),
    ),
    "agreements-sign-not-an-agreement": Bad(
        ("agreements", "sign", "other.json", "--as-center"),
        "other.json: not an agreement document",
        _write("other.json", '{"agreement": 1}'),
    ),
    "agreements-sign-bad-signature-entry": Bad(
        ("agreements", "sign", "draft.json", "--as-center"),
        "malformed signature",
        _draft(signatures=["not a signature"]),
    ),
    "agreements-sign-missing-key": Bad(
        ("agreements", "sign", "draft.json", "--key", "missing.pem"),
        "cannot load private key missing.pem",
        _draft(),
    ),
    "agreements-register-unsigned": Bad(
        ("agreements", "register", "draft.json"), "lacks the center's signature", _draft()
    ),
    "agreements-register-missing-file": Bad(
        ("agreements", "register", "missing.json"), "missing.json: No such file or directory"
    ),
    "agreements-suspend-unknown": Bad(
        ("agreements", "suspend", "agr-nobody"), "no agreement agr-nobody"
    ),
    "agreements-list-bad-config": Bad(
        ("agreements", "list"), "is not valid TOML", NOT_TOML, BAD_CONFIG
    ),
    "audit-key-bad-master-key": Bad(("audit", "key"), "is not 64 hex digits", BAD_MASTER_KEY),
    "audit-verify-bad-master-key": Bad(("audit", "verify"), "is not 64 hex digits", BAD_MASTER_KEY),
    "audit-export-bad-code": Bad(
        ("audit", "export", "--subject", "123", "--out", "bundle.json"), "--subject: "
    ),
    "audit-export-unknown-subject": Bad(
        ("audit", "export", "--subject", COMPANY, "--out", "bundle.json"),
        "no subject of that code is on record",
    ),
    "audit-verify-bundle-not-a-bundle": Bad(
        ("audit", "verify-bundle", "bundle.json"),
        "not an evidence bundle",
        _write("bundle.json", '{"format": "something else"}'),
    ),
    "audit-verify-bundle-bad-log-key": Bad(
        ("audit", "verify-bundle", "bundle.json", "--log-key", "log+00+AA=="),
        "--log-key: ",
    ),
    "audit-verify-bundle-bad-quorum": Bad(
        ("audit", "verify-bundle", "bundle.json", "--quorum", "-1"), "not a count of witnesses"
    ),
    "audit-prune-inside-retention": Bad(
        ("audit", "prune", "--before", datetime.now(UTC).date().isoformat()),
        "entries are kept 1095 days (Art 19)",
    ),
    "audit-prune-not-a-date": Bad(
        ("audit", "prune", "--before", "last year"), "'last year' is not an ISO 8601 date"
    ),
    "peers-add-no-such-ca": Bad(
        (
            *("peers", "add", "national", "--participant", "cn-platform", "--grpc", "h:1"),
            *("--token-url", "https://h/token", "--client-id", "hubei", "--ca", "ca.pem"),
            *("--cert", "c.pem", "--key", "k.pem"),
        ),
        "ca.pem: No such file or directory",
    ),
    "peers-list-bad-config": Bad(("peers", "list"), "is not valid TOML", NOT_TOML, BAD_CONFIG),
    "outbox-list-bad-config": Bad(("outbox", "list"), "is not valid TOML", NOT_TOML, BAD_CONFIG),
    "outbox-retry-not-dead": Bad(("outbox", "retry", "obx_nope"), "not a dead entry: obx_nope"),
    "outbox-purge-not-a-date": Bad(
        ("outbox", "purge", "--delivered-before", "soon"), "'soon' is not an ISO 8601 date"
    ),
    "maintain-lease-held": Bad(
        ("maintain",), "maintain's lease is held by replica-b", _maintain_lease_held
    ),
}

USAGE_ERRORS = {
    "no-command": (),
    "unknown-command": ("frobnicate",),
    "missing-arguments": ("agreements", "draft"),
    "bad-choice": ("certs", "issue", "zx-credit", "--kind", "robot"),
    "unknown-action": ("participants", "frobnicate"),
}


# --- running them -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `credit-gateway init`, copied for each test (a PKI and keys take a while)."""
    root = tmp_path_factory.mktemp("initialised")
    result = _run(root, ("init",))
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def root(initialised: Path, tmp_path: Path) -> Path:
    shutil.copytree(initialised, tmp_path, dirs_exist_ok=True)
    return tmp_path


def _run(
    root: Path, argv: tuple[str, ...], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    return subprocess.run(
        [str(SCRIPT), *argv],
        cwd=root,
        env={
            **clean,
            "CREDIT_GATEWAY_HOME": str(root / "var"),
            "CREDIT_GATEWAY_CERTS_DIR": str(root / "certs"),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _state(root: Path) -> dict[str, object]:
    """Every file under `root`, the SQLite database by its content (SQLite's side files and page
    layout are its own business)."""
    state: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_dir():
            state[name] = "directory"
        elif path.suffix == ".db":
            with closing(sqlite3.connect(path)) as db:
                state[name] = list(db.iterdump())
        elif not path.name.endswith(("-wal", "-shm", "-journal")):
            state[name] = path.read_bytes()
    return state


def _assert_refused(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("credit-gateway: "), lines[0]
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    return lines[0]


def test_every_subcommand_has_a_bad_input_case() -> None:
    commands = subcommands(build_parser())
    # A case covers the subcommand named by its argv's leading words.
    covered = {
        argv[:n] for argv in (bad.argv for bad in CASES.values()) for n in range(len(argv) + 1)
    }
    assert commands - covered == set(), "add a case to CASES for each new subcommand"


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_refused_in_one_line_and_changes_nothing(root: Path, case: Bad) -> None:
    case.setup(root)
    before = _state(root)
    line = _assert_refused(_run(root, case.argv, case.env))
    assert case.says in line
    assert _state(root) == before


@pytest.mark.parametrize("argv", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors_are_one_line_too(root: Path, argv: tuple[str, ...]) -> None:
    before = _state(root)
    line = _assert_refused(_run(root, argv))
    assert "--help" in line
    assert _state(root) == before
