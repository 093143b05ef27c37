"""`credit-gateway outbox list|retry|purge`: the deliveries to peer platforms waiting, done,
withheld by the policy, or dead (storage/outbox.py). `retry` and `purge` are operator actions
on record, each an audit entry in its own transaction."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from credit_gateway.adapters.storage import outbox
from credit_gateway.cli.audit import instant
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import utcnow
from credit_gateway.services.operator import database, mac_key

T = TypeVar("T")


def _action(settings: Settings, act: Callable[[Any, bytes], T]) -> T:
    """`act(session, mac_key)` in one write transaction: the change and its entry together."""
    key = mac_key(settings)
    with database(settings) as db, db.transaction() as session:
        return act(session, key)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db, db.transaction(write=False) as session:
        entries = outbox.list_entries(session, args.state, args.peer, args.limit)
        counts = outbox.counts(session)
    for e in entries:
        when = e.delivered_at if e.state == outbox.DELIVERED else e.next_at
        print(
            f"{e.id}  {e.state}  peer={e.peer}  record={e.record_id}  attempts={e.attempts}  "
            f"{'delivered_at' if e.state == outbox.DELIVERED else 'next_at'}="
            f"{when.isoformat() if when else '-'}"
            + (f"  last_error={e.last_error}" if e.last_error else "")
        )
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in outbox.STATES)
    print(f"outbox: {len(entries)} listed; in all {summary}")
    return 0


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    now = utcnow()
    retried = _action(
        settings, lambda session, mac: outbox.retry_dead(session, mac, now, args.peer, args.ids)
    )
    print(f"outbox: {retried} dead entries pending again, due now")
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    now, before = utcnow(), args.delivered_before
    purged = _action(
        settings, lambda session, mac: outbox.purge_delivered(session, mac, before, now)
    )
    print(f"outbox: purged {purged} entries delivered before {before.isoformat()}")
    return 0


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count from 1 to 10000")
    return int(text)


def add_outbox_commands(sub: Any) -> None:
    box = sub.add_parser("outbox", help="deliveries to peer platforms: list, retry, purge")
    actions = box.add_subparsers(dest="outbox_command", required=True)
    listing = actions.add_parser("list", help="entries, newest first")
    listing.set_defaults(handler=cmd_list)
    listing.add_argument("--state", choices=outbox.STATES)
    listing.add_argument("--peer", help="a peer's name")
    listing.add_argument("--limit", type=_limit, default=100, help="at most this many (100)")
    retry = actions.add_parser(
        "retry", help="dead entries pending again: those named, or every dead one (of --peer)"
    )
    retry.set_defaults(handler=cmd_retry)
    retry.add_argument("--peer", help="a peer's name")
    retry.add_argument("ids", nargs="*", help="entry ids (outbox list --state dead)")
    purge = actions.add_parser("purge", help="remove delivered entries (never any other)")
    purge.set_defaults(handler=cmd_purge)
    purge.add_argument(
        "--delivered-before",
        required=True,
        type=instant,
        help="a date (UTC) or a time with its offset",
    )
