"""`credit-gateway agreements draft|sign|register|suspend|list`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from credit_gateway.domain.agreements import (
    CENTER,
    Agreement,
    AgreementSignature,
    Operation,
    Quotas,
    aware,
)
from credit_gateway.domain.catalog import Category, DisclosureLevel
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.errors import InvalidArgument
from credit_gateway.exchange import agreements as signing
from credit_gateway.runtime.config import Settings
from credit_gateway.services import operator
from credit_gateway.services.operator import read_json_object


def _write(document: dict[str, Any], out: str | None) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out:
        Path(out).write_text(text)
    else:
        sys.stdout.write(text)


def _read_agreement(file: str) -> tuple[bytes, dict[str, Any], Agreement]:
    """An agreement document's bytes, its JSON and its terms, refused whole here if malformed
    (signing and verifying index into it and would fail on a stray shape)."""
    raw, document = read_json_object(Path(file))
    terms, signatures = document.get("agreement"), document.get("signatures", [])
    if not isinstance(terms, dict) or not isinstance(signatures, list):
        raise InvalidArgument(
            f"{file}: not an agreement document (an 'agreement' object, a 'signatures' list)",
            reason="AGREEMENT_MALFORMED",
        )
    for signature in signatures:
        AgreementSignature.from_document(signature)
    return raw, document, Agreement.from_document(terms)


def cmd_draft(args: argparse.Namespace, settings: Settings) -> int:
    agreement = Agreement(
        id=args.id,
        counterparty=args.counterparty,
        operations=frozenset(Operation(o) for o in args.operations),
        items=frozenset(args.items),
        categories=frozenset(Category(c) for c in args.categories),
        purposes=frozenset(args.purposes),
        levels=frozenset(DisclosureLevel(v) for v in args.levels),
        subject_kinds=frozenset(SubjectKind(k) for k in args.subject_kinds),
        quotas=Quotas(args.calls_per_day, args.records_per_day),
        # Signed terms must not depend on the operator's time zone: an offset is required.
        valid_from=aware(args.valid_from, "--valid-from"),
        valid_until=aware(args.valid_until, "--valid-until"),
    )
    _write(signing.draft(agreement), args.out)
    return 0


def cmd_sign(args: argparse.Namespace, settings: Settings) -> int:
    _, document, agreement = _read_agreement(args.file)
    if args.as_center:
        key, signer = signing.load_private_key(settings.operator_key_file), CENTER
    else:
        key, signer = signing.load_private_key(Path(args.key)), agreement.counterparty
    _write(signing.sign(document, signer, key), args.out or args.file)
    print(f"agreements: signed {agreement.id} as {signer}", file=sys.stderr)
    return 0


def cmd_register(args: argparse.Namespace, settings: Settings) -> int:
    raw, document, terms = _read_agreement(args.file)
    agreement = operator.register_agreement(settings, raw, document, terms.counterparty)
    print(
        f"agreements: registered {agreement.id} with {agreement.counterparty} "
        f"until {agreement.valid_until:%Y-%m-%d}"
    )
    return 0


def cmd_suspend(args: argparse.Namespace, settings: Settings) -> int:
    operator.suspend_agreement(settings, args.id)
    print(f"agreements: suspended {args.id}")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    for agreement, status in operator.list_agreements(settings):
        print(
            json.dumps(
                {
                    "id": agreement.id,
                    "counterparty": agreement.counterparty,
                    "status": status.value,
                    "operations": sorted(o.value for o in agreement.operations),
                    "valid_until": agreement.valid_until.isoformat(),
                }
            )
        )
    return 0


def add_agreement_commands(sub: Any) -> None:
    agreements = sub.add_parser("agreements", help="signed data-sharing agreements (Art 20)")
    actions = agreements.add_subparsers(dest="agreements_command", required=True)
    draft = actions.add_parser("draft", help="write an unsigned agreement")
    draft.set_defaults(handler=cmd_draft)
    draft.add_argument("--id", required=True)
    draft.add_argument("--counterparty", required=True)
    draft.add_argument(
        "--operations", nargs="+", required=True, choices=[o.value for o in Operation]
    )
    draft.add_argument("--items", nargs="*", default=[])
    draft.add_argument("--categories", nargs="*", default=[], choices=[c.value for c in Category])
    draft.add_argument("--purposes", nargs="+", required=True)
    draft.add_argument(
        "--levels", nargs="+", required=True, choices=[v.value for v in DisclosureLevel]
    )
    draft.add_argument(
        "--subject-kinds",
        nargs="+",
        default=[k.value for k in SubjectKind],
        choices=[k.value for k in SubjectKind],
    )
    draft.add_argument("--calls-per-day", type=int, default=10_000)
    draft.add_argument("--records-per-day", type=int, default=100_000)
    draft.add_argument("--valid-from", required=True)
    draft.add_argument("--valid-until", required=True)
    draft.add_argument("--out")
    sign = actions.add_parser("sign", help="add a signature (the center's, or the counterparty's)")
    sign.set_defaults(handler=cmd_sign)
    sign.add_argument("file")
    who = sign.add_mutually_exclusive_group(required=True)
    who.add_argument("--as-center", action="store_true", help="sign with the operator key")
    who.add_argument("--key", help="the counterparty's private key (PEM)")
    sign.add_argument("--out")
    register = actions.add_parser("register", help="verify both signatures and register")
    register.set_defaults(handler=cmd_register)
    register.add_argument("file")
    suspend = actions.add_parser("suspend", help="suspend a registered agreement")
    suspend.set_defaults(handler=cmd_suspend)
    suspend.add_argument("id")
    actions.add_parser("list", help="list registered agreements").set_defaults(handler=cmd_list)
