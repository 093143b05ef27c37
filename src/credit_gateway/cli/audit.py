"""`credit-gateway audit key|verify|export|verify-bundle|prune`: the operator's and the
auditor's commands on the audit log (Art 19, 32-33, 36).

`verify-bundle` is the auditor's: it reads the bundle and the keys named on its command line and
nothing of the gateway (no database, no master key, no certificate), so it runs anywhere.
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from credit_gateway.adapters.storage.db import Database
from credit_gateway.crypto.master import MasterKey, SubjectLookup
from credit_gateway.crypto.notes import Note, NoteError, Verifier, cosignature_time
from credit_gateway.domain.evidence import Bundle, verify_bundle
from credit_gateway.domain.identifiers import IdentifierError, SubjectKind, parse_subject_code
from credit_gateway.domain.timestamps import civil_date
from credit_gateway.errors import FailedPrecondition, InvalidArgument
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import utcnow
from credit_gateway.services.audit import AuditLog, log_signer


@contextmanager
def _audit_log(settings: Settings) -> Iterator[AuditLog]:
    """The log as the gateway runs it (its keys derived from the master key), on a database of
    this command's own."""
    master = MasterKey.load(settings.master_key_file)
    db = Database.connect(settings.effective_database_url)
    try:
        yield AuditLog(
            db,
            master,
            settings.effective_audit_origin,
            lambda: utcnow(),  # looked up at each call: a test moves the clock here
            batch=settings.audit_batch,
            retention=timedelta(days=settings.audit_retention_days),
        )
    finally:
        db.dispose()


def cmd_key(args: argparse.Namespace, settings: Settings) -> int:
    origin = settings.effective_audit_origin
    verifier = log_signer(MasterKey.load(settings.master_key_file), origin).verifier
    print(f"origin  {origin}")
    print(f"key id  {verifier.key_id.hex()}")
    print(f"vkey    {verifier.vkey()}")
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    with _audit_log(settings) as log:
        found = log.check()
        summary = log.summary()
    if found:
        for inconsistency in found:
            print(inconsistency)
        raise FailedPrecondition(
            f"the audit log does not hold: {found[0]} "
            f"({len(found)} {'inconsistency' if len(found) == 1 else 'inconsistencies'} in all)",
            reason="LOG_INCONSISTENT",
        )
    print(
        f"audit: the log holds: {summary.size} entries in the tree, {summary.checkpoints} "
        f"checkpoints verified, {summary.pruned} pruned past retention, "
        f"{summary.waiting} waiting to be integrated"
    )
    return 0


def _subject_lookup(settings: Settings, code: str, kind: str | None) -> str:
    try:
        _, parsed = parse_subject_code(
            code, today=civil_date(utcnow()), kind=SubjectKind(kind) if kind else None
        )
    except IdentifierError as exc:
        raise InvalidArgument.field("--subject", exc.message, reason=exc.reason) from exc
    return SubjectLookup(MasterKey.load(settings.master_key_file))(parsed.value)


def _witness_keys(settings: Settings) -> tuple[str, ...]:
    """The cosignature keys of the witnesses the log asks, for the bundle's reader."""
    return tuple(peer.vkey for peer in settings.witnesses)


def _cosigned(note: Note, settings: Settings) -> int:
    """How many of the configured witnesses cosigned ``note``. A checkpoint this command made
    (by integrating) has none yet: the server offers witnesses the checkpoints it makes."""
    count = 0
    for peer in settings.witnesses:
        try:
            cosignature_time(note, peer.verifier)
        except NoteError:
            continue
        count += 1
    return count


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    lookup = _subject_lookup(settings, args.subject, args.kind)
    with _audit_log(settings) as log:
        subject = log.subject_id(lookup)
        # The bundle proves the entries in the tree: whatever still waits goes in first.
        added, quarantined = log.integrate_all()
        evidence = log.evidence(subject, _witness_keys(settings))
    Path(args.out).write_bytes(evidence.bundle.to_json())
    if added or quarantined:
        print(f"audit: integrated {added} waiting entries first ({quarantined} quarantined)")
    said = f"; {evidence.pruned} pruned past retention left out" if evidence.pruned else ""
    if settings.witnesses:
        cosigned = _cosigned(evidence.bundle.checkpoint, settings)
        said += f"; cosigned by {cosigned} of the {len(settings.witnesses)} witnesses"
    print(
        f"audit: wrote {args.out}: {len(evidence.bundle.entries)} entries of the subject, "
        f"each proven in the checkpoint of size {evidence.size}{said}"
    )
    return 0


def _verifier(option: str, vkey: str) -> Verifier:
    try:
        return Verifier.from_vkey(vkey)
    except NoteError as exc:
        raise InvalidArgument.field(option, exc.message, reason=exc.reason) from exc


def cmd_verify_bundle(args: argparse.Namespace, settings: Settings) -> int:
    log_key = _verifier("--log-key", args.log_key) if args.log_key else None
    witnesses = [_verifier("--witness-key", vkey) for vkey in args.witness_key]
    bundle = Bundle.from_json(Path(args.file).read_bytes())
    verified = verify_bundle(bundle, log_key=log_key, witness_keys=witnesses, quorum=args.quorum)
    checkpoint = verified.checkpoint
    used = log_key or Verifier.from_vkey(bundle.log_key)  # verify_bundle has read it
    print(f"checkpoint  {checkpoint.origin} size {checkpoint.size}")
    print(f"root        {base64.b64encode(checkpoint.root).decode()}")
    print(f"log key id  {used.key_id.hex()}")
    if verified.log_key_from_bundle:
        print(
            "            the bundle's own key: compare its id with the one the center "
            "publishes (`credit-gateway audit key`), or give it with --log-key"
        )
    for name, at in verified.cosigned_by:
        print(f"cosigned    {name} at {datetime.fromtimestamp(at, UTC).isoformat()}")
    for entry in verified.entries:
        doc = entry.document()
        print(
            f"leaf {entry.leaf_index}  {doc.get('at')}  {doc.get('caller')}  "
            f"{doc.get('method')}  {doc.get('outcome')}"
        )
    print(f"verified: {len(verified.entries)} entries in the log at size {checkpoint.size}")
    return 0


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    with _audit_log(settings) as log:
        pruned = log.prune(args.before)
    print(
        f"audit: pruned {pruned} entries before {args.before.isoformat()}: their bodies are "
        "gone, their hashes kept, so proofs still verify"
    )
    return 0


def instant(text: str) -> datetime:
    """A date (its midnight, UTC) or an ISO 8601 time with its offset."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset (or give a date)")
    return moment


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count of witnesses")
    return int(text)


def add_audit_commands(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit log: its key, checks, evidence, retention")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    key = actions.add_parser("key", help="print the log's verifier key and origin, to publish")
    key.set_defaults(handler=cmd_key)
    verify = actions.add_parser(
        "verify", help="check the stored log against its signed checkpoints (integrates nothing)"
    )
    verify.set_defaults(handler=cmd_verify)
    export = actions.add_parser(
        "export", help="write a subject's evidence bundle: its entries with their proofs"
    )
    export.set_defaults(handler=cmd_export)
    export.add_argument("--subject", required=True, help="the subject's USCC or resident id")
    export.add_argument(
        "--kind",
        choices=[k.value for k in SubjectKind],
        help="the kind of subject the code names; required when it reads as both",
    )
    export.add_argument("--out", required=True, help="the bundle file to write")
    check = actions.add_parser(
        "verify-bundle", help="check an evidence bundle offline (no database, no gateway)"
    )
    check.set_defaults(handler=cmd_verify_bundle)
    check.add_argument("file")
    check.add_argument("--log-key", help="the log's published verifier key (vkey)")
    check.add_argument(
        "--witness-key", action="append", default=[], help="a trusted witness's vkey (repeat)"
    )
    check.add_argument(
        "--quorum", type=_count, default=0, help="cosignatures of trusted witnesses required"
    )
    prune = actions.add_parser(
        "prune", help="remove entry bodies past retention (Art 19), keeping their hashes"
    )
    prune.set_defaults(handler=cmd_prune)
    prune.add_argument(
        "--before", required=True, type=instant, help="a date (UTC) or a time with its offset"
    )
