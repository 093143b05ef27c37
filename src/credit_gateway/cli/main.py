"""The `credit-gateway` command: the operator's tool (DESIGN "Who calls it": operator)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from credit_gateway.devpki import pki
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.errors import GatewayError, InvalidArgument
from credit_gateway.runtime import logs
from credit_gateway.runtime.config import Settings

Handler = Callable[[argparse.Namespace, Settings], int]

EXIT_REFUSED = 2  # what argparse exits with for a usage error; every refusal uses it


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(args.config)


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway.cli.bootstrap import initialise

    report = initialise(settings)
    for line in report.created or ("already initialised",):
        print(f"init: {line}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway.runtime import server

    if args.processes is not None:
        settings = settings.replaced(processes=args.processes)
    logs.configure(settings.log_level)
    server.serve_processes(settings)
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway.adapters.storage import migrate
    from credit_gateway.adapters.storage.db import Database

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


def cmd_certs_sign(args: argparse.Namespace, settings: Settings) -> int:
    csr_pem = Path(args.csr).read_bytes()  # an unreadable file is told like every other
    signed = pki.sign_participant_csr(
        settings.certs_dir, csr_pem, args.name, args.kind, overwrite=args.overwrite
    )
    print(f"certs: {signed.cert_path} x5t#S256={signed.x5t_s256}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway.adapters.storage import keys as key_store
    from credit_gateway.adapters.storage.db import Database
    from credit_gateway.crypto.master import MasterKey
    from credit_gateway.runtime.gateway import utcnow

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
    from credit_gateway.services import operator

    _, document = operator.read_json_object(Path(args.file))
    catalog = operator.load_catalog(settings, document)  # with its audit entry
    print(
        f"catalog: version {catalog.version} current, {len(catalog.items)} items, "
        f"{len(catalog.purposes)} purposes"
    )
    return 0


# The options each action needs: argparse cannot require them of one positional's choice.
_PARTICIPANT_OPTIONS = {
    "add": ("id", "kind", "org_code", "name"),
    "suspend": ("id",),
    "licence": ("id",),
    "list": (),
}


def _licence_until(text: str | None) -> datetime | None:
    """An ISO 8601 date or time; one without an offset is read as UTC by the registry (an
    operator types `2027-01-01` for a licence that ends that day)."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument.field(
            "--licence-valid-until", f"{text!r} is not an ISO 8601 date or time"
        ) from None


def _participant_options(args: argparse.Namespace) -> datetime | None:
    """What argparse cannot check of `participants ACTION`: the options the action needs and
    their combinations. Returns the --licence-valid-until given, parsed."""
    missing = [name for name in _PARTICIPANT_OPTIONS[args.action] if not getattr(args, name)]
    if missing:
        options = ", ".join("--" + name.replace("_", "-") for name in missing)
        raise InvalidArgument(f"participants {args.action} needs {options}")
    until = _licence_until(args.licence_valid_until)
    if args.licence_number and until is None:
        raise InvalidArgument("--licence-number needs --licence-valid-until")
    if args.action == "licence" and until is None and not args.revoke_licence:
        raise InvalidArgument(
            "participants licence needs --licence-valid-until or --revoke-licence"
        )
    return until


def cmd_participants(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway.services import operator as registry

    until = _participant_options(args)
    if args.action == "add":
        participant = registry.add_participant(
            settings,
            participant_id=args.id,
            kind=args.kind,
            org_code=args.org_code,
            name=args.name,
            certificates=[Path(c) for c in args.cert],
            scopes=args.scopes,
            licence=(args.licence_number, until) if args.licence_number and until else None,
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
    from credit_gateway.services import operator as registry

    kind = SubjectKind(args.kind) if args.kind else None
    kid = registry.register_subject_key(settings, args.code, Path(args.jwk), kind=kind)
    print(f"subjects: key {kid} registered; GrantConsent now requires the subject's signature")
    return 0


def cmd_maintain(args: argparse.Namespace, settings: Settings) -> int:
    from credit_gateway.runtime.delivery import holder_name
    from credit_gateway.services import maintain

    report = maintain.run_command(settings, "cli:" + holder_name(), force=args.force)
    for job, count in report.counts.items():
        print(f"maintain: {job} {count}")
    if report.stopped:
        print("maintain: stopped part way: another runner took the lease and goes on")
    return 0


MAINTAIN_HELP = """\
Apply the time rules once, at the gateway's clock, and print how many each moved:
objection-suspended (pending objections unanswered 15 days: suspended, the feed told),
disclosure-ended (records past their disclosure period: archived, the feed told),
consent-expired (consents past their validity: expired, their grantees' watches told),
inquiries-pruned (audit entry bodies past audit_retention_days: removed, hashes kept),
feed-pruned (changes past feed_retention_days). Each is an audit entry; a second run moves
nothing. `serve` runs the same every maintain_interval_seconds on the replica holding the
lease "maintain"; this command takes that lease for its run, and while another holds it is
refused (MAINTAIN_LEASE_HELD, exit 2) unless --force."""


class _Parser(argparse.ArgumentParser):
    """Usage errors in the one-line form of every other refusal (argparse would print the
    whole usage first); subcommands' parsers are made of this class too."""

    def error(self, message: str) -> NoReturn:
        _say(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(EXIT_REFUSED)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="credit-gateway", description=__doc__)
    parser.add_argument(
        "--config", type=Path, help="settings file (TOML); CREDIT_GATEWAY_* variables override it"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str,
        handler: Handler,
        help_text: str,
        parent: argparse._SubParsersAction[_Parser] = sub,
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text)
        p.set_defaults(handler=handler)
        return p

    add("init", cmd_init, "create the dev PKI, keys and database (idempotent)")
    serve = add("serve", cmd_serve, "run the gateway until SIGTERM")
    serve.add_argument(
        "--processes",
        type=int,
        help="server processes sharing the ports, each with its own event loop (default 1)",
    )
    maintain = sub.add_parser(
        "maintain",
        help="apply the time rules once (also run by serve)",
        description=MAINTAIN_HELP,
    )
    maintain.set_defaults(handler=cmd_maintain)
    maintain.add_argument(
        "--force",
        action="store_true",
        help="run even while another runner holds the lease: safe, as every rule moves a row "
        "only from the state it was read in, so two runs never apply one twice",
    )
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
    sign = add(
        "sign",
        cmd_certs_sign,
        "sign a participant's CSR: its private key stays with the participant",
        certs,
    )
    sign.add_argument("csr", help="the PEM certificate signing request")
    sign.add_argument("--name", required=True)
    sign.add_argument("--kind", required=True, choices=[k.value for k in pki.ParticipantKind])
    sign.add_argument("--overwrite", action="store_true")
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
    key.add_argument(
        "--kind",
        choices=[k.value for k in SubjectKind],
        help="the kind of subject the code names; required when it reads as both",
    )
    from credit_gateway.cli.agreements import add_agreement_commands

    add_agreement_commands(sub)
    from credit_gateway.cli.audit import add_audit_commands

    add_audit_commands(sub)
    from credit_gateway.cli.peers import add_peer_commands

    add_peer_commands(sub)
    from credit_gateway.cli.outbox import add_outbox_commands

    add_outbox_commands(sub)
    return parser


def _say(message: str) -> None:
    # One line whatever the message holds: an operator's script reads stderr line by line.
    text = " ".join(line.strip() for line in message.splitlines())
    print(f"credit-gateway: error: {text}", file=sys.stderr)


def _refusal(error: GatewayError | OSError) -> str | None:
    """What to tell the operator, or None for an error that is a bug rather than a refusal."""
    if isinstance(error, GatewayError):
        return error.message
    if error.filename is None:  # not about a file the operator named: let it show where
        return None
    names = [str(n) for n in (error.filename, error.filename2) if n is not None]
    return f"{' -> '.join(names)}: {error.strerror or error}"


def main(argv: Sequence[str] | None = None) -> int:
    """Whatever the operator got wrong (usage, a GatewayError, a named file that cannot be read
    or written) ends here in one line on stderr and exit status 2, whichever subcommand it was.
    Anything else is a bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args, _settings(args)))
    except (GatewayError, OSError) as error:
        message = _refusal(error)
        if message is None:
            raise
        _say(message)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
