"""The `credit-gateway` command: the operator's tool (DESIGN "Who calls it": operator)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from credit_gateway import logs, pki
from credit_gateway.config import Settings
from credit_gateway.errors import GatewayError

Handler = Callable[[argparse.Namespace, Settings], int]


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(args.config)


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway.bootstrap import initialise

    report = initialise(settings)
    for line in report.created or ("already initialised",):
        print(f"init: {line}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway import server

    logs.configure(settings.log_level)
    server.serve_forever(settings)
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway.storage import migrate
    from credit_gateway.storage.db import Database

    db = Database.connect(settings.effective_database_url)
    try:
        migrate.upgrade(db.engine)
    finally:
        db.dispose()
    print("db: at head")
    return 0


def cmd_certs_init(args: argparse.Namespace, settings: Settings) -> int:
    paths = pki.init_pki(settings.certs_dir)
    print(f"certs: CA {paths.ca_cert}, server {paths.server_cert}")
    return 0


def cmd_certs_issue(args: argparse.Namespace, settings: Settings) -> int:
    issued = pki.issue_participant(
        settings.certs_dir, args.name, args.kind, overwrite=args.overwrite
    )
    print(f"certs: {issued.cert_path} x5t#S256={issued.x5t_s256}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway.crypto.master import MasterKey
    from credit_gateway.gateway import utcnow
    from credit_gateway.storage import keys as key_store
    from credit_gateway.storage.db import Database

    db = Database.connect(settings.effective_database_url)
    try:
        with db.transaction() as session:
            kid = key_store.rotate_signing_key(
                session, MasterKey.load(settings.master_key_file), utcnow()
            )
    finally:
        db.dispose()
    print(f"keys: current signing key {kid}; the previous key verifies until its tokens expire")
    return 0


def cmd_catalog_load(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway.domain.canonical import parse_json_object
    from credit_gateway.gateway import utcnow
    from credit_gateway.storage import catalog as catalog_store
    from credit_gateway.storage.db import Database

    document = parse_json_object(Path(args.file).read_bytes())
    db = Database.connect(settings.effective_database_url)
    try:
        with db.transaction() as session:
            catalog = catalog_store.store_catalog(session, document, utcnow())
    finally:
        db.dispose()
    print(
        f"catalog: version {catalog.version} current, {len(catalog.items)} items, "
        f"{len(catalog.purposes)} purposes"
    )
    return 0


def cmd_participants(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway import registry

    if args.action == "add":
        participant = registry.add_participant(
            settings,
            participant_id=args.id,
            kind=args.kind,
            org_code=args.org_code,
            name=args.name,
            certificates=[Path(c) for c in args.cert],
            scopes=args.scopes,
            licence=(args.licence_number, datetime.fromisoformat(args.licence_valid_until))
            if args.licence_number
            else None,
            jwks_file=Path(args.jwks) if args.jwks else None,
        )
        print(
            f"participants: added {participant.id} ({participant.kind.value}) "
            f"scopes={' '.join(sorted(participant.scopes))}"
        )
    elif args.action == "suspend":
        registry.suspend_participant(settings, args.id)
        print(f"participants: suspended {args.id}")
    elif args.action == "licence":
        until = (
            datetime.fromisoformat(args.licence_valid_until) if args.licence_valid_until else None
        )
        registry.change_licence(
            settings, args.id, valid_until=until, revoked=args.revoke_licence or None
        )
        print(f"participants: licence of {args.id} updated")
    else:
        for p in registry.list_participants(settings):
            print(
                json.dumps(
                    {
                        "id": p.id,
                        "kind": p.kind.value,
                        "status": p.status.value,
                        "name": p.name,
                        "scopes": sorted(p.scopes),
                    },
                    ensure_ascii=False,
                )
            )
    return 0


def cmd_subject_key(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway import registry

    kid = registry.register_subject_key(settings, args.code, Path(args.jwk))
    print(f"subjects: key {kid} registered; GrantConsent now requires the subject's signature")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="credit-gateway", description=__doc__)
    parser.add_argument(
        "--config", type=Path, help="settings file (TOML); CREDIT_GATEWAY_* variables override it"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str,
        handler: Handler,
        help_text: str,
        parent: argparse._SubParsersAction[argparse.ArgumentParser] = sub,
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text)
        p.set_defaults(handler=handler)
        return p

    add("init", cmd_init, "create the dev PKI, keys and database (idempotent)")
    add("serve", cmd_serve, "run the gateway until SIGTERM")
    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    add("upgrade", cmd_db_upgrade, "apply migrations", db)
    certs = sub.add_parser("certs", help="development PKI").add_subparsers(
        dest="certs_command", required=True
    )
    add("init", cmd_certs_init, "make the CA and server certificate", certs)
    issue = add("issue", cmd_certs_issue, "issue a participant's client certificate", certs)
    issue.add_argument("name")
    issue.add_argument("--kind", required=True, choices=[k.value for k in pki.ParticipantKind])
    issue.add_argument("--overwrite", action="store_true")
    keys = sub.add_parser("keys", help="token signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    add("rotate", cmd_keys_rotate, "make a new current signing key", keys)
    catalog = sub.add_parser("catalog", help="the information catalog").add_subparsers(
        dest="catalog_command", required=True
    )
    load = add("load", cmd_catalog_load, "load a catalog file and make it current", catalog)
    load.add_argument("file")
    participants = add("participants", cmd_participants, "register and manage participants")
    participants.add_argument("action", choices=["add", "suspend", "licence", "list"])
    participants.add_argument("--id")
    participants.add_argument("--kind", choices=[k.value for k in pki.ParticipantKind])
    participants.add_argument("--org-code")
    participants.add_argument("--name")
    participants.add_argument("--cert", action="append", default=[])
    participants.add_argument("--jwks")
    participants.add_argument("--scopes", nargs="*")
    participants.add_argument("--licence-number")
    participants.add_argument("--licence-valid-until")
    participants.add_argument(
        "--revoke-licence", action="store_true", help="with `licence`: revoke it"
    )
    subjects = sub.add_parser("subjects", help="credit subjects").add_subparsers(
        dest="subjects_command", required=True
    )
    key = add(
        "register-key",
        cmd_subject_key,
        "register a subject's public key: its consents must then be signed",
        subjects,
    )
    key.add_argument("code", help="the subject's USCC or resident identity number")
    key.add_argument("--jwk", required=True, help="file with the public JWK (EC P-256)")
    from credit_gateway.agreement_cli import add_agreement_commands

    add_agreement_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        return int(args.handler(args, settings))
    except GatewayError as error:
        print(f"credit-gateway: error: {error.message}", file=sys.stderr)
        return 2
    except pki.PkiError as error:
        print(f"credit-gateway: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
