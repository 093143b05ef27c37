"""The reasons a client can be told, read from the source: the tables in docs/clients.md.

A refused call carries a google.rpc.ErrorInfo whose `reason` is a stable string; its gRPC code
follows from the error class that carries it (adapters/grpc/errors.py). This script reads
src/credit_gateway with `ast` (nothing is run but the class table) and finds each reason where
the code spells it:

* ``default_reason = "X"`` in an error class;
* ``SomeError(..., reason="X")`` and ``SomeError.field(..., reason="X")``;
* an error class whose ``__init__`` takes the reason as its first parameter, called with a
  constant (``ConsentTokenError("TOKEN_X")``);
* where a module builds an error with a reason it looked up (``reason=reason``), the
  reason-shaped strings of that module's constant tables (``_REFUSALS``, ``_RULE_REASONS``);
* the release decision's reasons (domain/decisions.Reason): request-level ones refuse the call,
  item- and record-level ones are reported in ``QueryResponse.withheld``;
* a submission's and a push's per-record rejections (``reject("X", ...)`` in services/submission.py
  and services/push.py).

`python scripts/gen_reasons.py` rewrites the tables between the markers in docs/clients.md;
`--check` exits 1 when they are stale (tests/unit/test_reasons_doc.py runs it).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "credit_gateway"
DOC = ROOT / "docs" / "clients.md"
BEGIN, END = "<!-- reasons:begin (scripts/gen_reasons.py) -->", "<!-- reasons:end -->"
REASON_SHAPE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
# What the storage error's reason becomes at the edge: the driver's words stay in our log.
EDGE_REASONS = {"StorageError": "STORAGE_UNAVAILABLE"}


@dataclass(frozen=True, order=True)
class Site:
    reason: str
    error_class: str
    module: str
    message: str


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if relative.parts[:3] == ("adapters", "grpc", "v1") or "migrations" in relative.parts:
            continue
        yield str(relative), ast.parse(path.read_text(encoding="utf-8"))


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if (
        isinstance(node, ast.Attribute)
        and node.attr == "field"
        and isinstance(node.value, ast.Name)
    ):
        return node.value.id  # InvalidArgument.field(...)
    return None


def _text(node: ast.expr, placeholder: str) -> str | None:
    """A string literal as the code writes it; an f-string's fields shown as ``placeholder``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(v.value) if isinstance(v, ast.Constant) else placeholder for v in node.values
        )
    return None


def _message(call: ast.Call) -> str:
    """The call's message as the code writes it, placeholders shown as <...>."""
    # InvalidArgument.field(field, description): the description is the message.
    args = call.args[1:] if isinstance(call.func, ast.Attribute) else call.args
    return next((t for a in args[:2] if (t := _text(a, "<...>")) is not None), "")


def error_classes() -> dict[str, type[BaseException]]:
    """Every GatewayError subclass defined in the package, by class name."""
    from credit_gateway.errors import GatewayError

    found: dict[str, type[BaseException]] = {}
    for module, tree in modules():
        dotted = "credit_gateway." + module.removesuffix(".py").replace("/", ".")
        dotted = dotted.removesuffix(".__init__")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                value = getattr(importlib.import_module(dotted), node.name, None)
                if isinstance(value, type) and issubclass(value, GatewayError):
                    found[node.name] = value
    return found


def grpc_code(error_class: type[BaseException]) -> str:
    from google.rpc import code_pb2

    from credit_gateway.adapters.grpc.errors import _CODES

    code = next((c for cls, c in _CODES if issubclass(error_class, cls)), code_pb2.INTERNAL)
    return str(code_pb2.Code.Name(code))


def _init_params(cls: ast.ClassDef) -> list[str] | None:
    """The positional parameters of a class's own ``__init__`` (self left out), if it has one."""
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            return [a.arg for a in node.args.args[1:]]
    return None


def _constant(node: ast.expr) -> str | None:
    return _text(node, "*")  # reason=f"CONSENT_{status.name}": a family of reasons, CONSENT_*


def _super_init_reason(node: ast.Call) -> ast.expr | None:
    """The reason= a class passes to ``super().__init__``, if any."""
    func = node.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "__init__"
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "super"
    ):
        return next((k.value for k in node.keywords if k.arg == "reason"), None)
    return None


def error_sites(classes: dict[str, type[BaseException]]) -> list[Site]:
    trees = list(modules())
    # Classes that take the reason (and message) by position: ConsentTokenError("TOKEN_X"),
    # WitnessRefusal(404, "WITNESS_UNKNOWN_LOG", "...").
    positional = {
        node.name: params
        for _, tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and node.name in classes
        and (params := _init_params(node)) is not None
        and "reason" in params
    }
    sites: set[Site] = set()
    by_default: dict[str, tuple[str, str]] = {}  # class -> a module and message raising it bare
    for module, tree in trees:
        looked_up: set[str] = set()  # classes this module builds with a reason it looked up
        for cls_node in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            if cls_node.name not in classes:
                continue
            for node in ast.walk(cls_node):
                if isinstance(node, ast.Call):
                    passed = _super_init_reason(node)
                    if passed is not None and _constant(passed) is None:
                        looked_up.add(cls_node.name)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            cls = _name(node.func)
            if cls not in classes:
                continue
            reason = next((k.value for k in node.keywords if k.arg == "reason"), None)
            message = _message(node)
            params = positional.get(cls, [])
            if "reason" in params and len(node.args) > params.index("reason"):
                reason = node.args[params.index("reason")]
                at = params.index("message") if "message" in params else None
                message = (
                    ""
                    if at is None or len(node.args) <= at
                    else _text(node.args[at], "<...>") or ""
                )
            if reason is None:
                by_default.setdefault(cls, (module, message))
            elif (constant := _constant(reason)) is not None:
                sites.add(Site(constant, cls, module, message))
            else:
                looked_up.add(cls)
        if module == "domain/decisions.py":
            continue  # its reasons are sorted by level below
        for cls in looked_up:
            for constant in _table_constants(tree):
                sites.add(Site(constant, cls, module, ""))
    # A class's default reason reaches a client only where it is raised without one.
    for cls, (module, message) in by_default.items():
        default = getattr(classes[cls], "default_reason", None)
        if isinstance(default, str):
            sites.add(Site(default, cls, module, message))
    return sorted(sites)


def _table_constants(tree: ast.Module) -> Iterator[str]:
    """Reason-shaped strings in the module's constant tables (module-level dicts)."""
    for stmt in tree.body:
        value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(value, ast.Dict):
            for node in ast.walk(value):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and REASON_SHAPE.fullmatch(node.value)
                ):
                    yield node.value


def decision_reasons() -> dict[str, list[str]]:
    """domain/decisions.Reason by level, as its comments group it."""
    levels: dict[str, list[str]] = defaultdict(list)
    level = ""
    source = (SRC / "domain" / "decisions.py").read_text(encoding="utf-8")
    body = source.split("class Reason(", 1)[1].split("\n\n\n", 1)[0]
    for line in body.splitlines():
        if marker := re.match(r"\s*# (\w[\w-]*)-level", line):
            level = marker.group(1)
        elif member := re.match(r"\s*([A-Z_0-9]+) = \"([A-Z_0-9]+)\"", line):
            levels[level].append(member.group(2))
    return levels


def submission_rejections() -> list[tuple[str, str]]:
    """Per-record rejections of a submission and of a push (which adds its own)."""
    found: dict[str, str] = {}
    trees = [
        ast.parse((SRC / "services" / name).read_text(encoding="utf-8"))
        for name in ("submission.py", "push.py")
    ]
    for node in (node for tree in trees for node in ast.walk(tree)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "reject"
            and len(node.args) >= 3
            and isinstance(node.args[0], ast.Constant)
        ):
            text = _text(node.args[2], "<...>") or ""
            found.setdefault(str(node.args[0].value), text)
    return sorted(found.items())


def render() -> str:
    classes = error_classes()
    rows: dict[tuple[str, str], tuple[set[str], set[str], str]] = {}
    levels = decision_reasons()
    sites = error_sites(classes)
    from credit_gateway.domain.decisions import QUOTA_REASONS

    for reason in levels["request"]:
        cls = "ResourceExhausted" if reason in QUOTA_REASONS else "PermissionDenied"
        sites.append(Site(reason, cls, "domain/policy.py", "refused by the release decision"))
    for site in sites:
        reason = EDGE_REASONS.get(site.error_class, site.reason)
        key = (reason, grpc_code(classes[site.error_class]))
        where, names, message = rows.get(key, (set(), set(), ""))
        where.add(site.module)
        names.add(site.error_class)
        rows[key] = (where, names, message or (site.message if site.message != "(default)" else ""))
    out = [
        "| reason | gRPC code | raised as | where | message |",
        "|---|---|---|---|---|",
    ]
    for (reason, code), (where, names, message) in sorted(rows.items()):
        out.append(
            f"| `{reason}` | {code} | {', '.join(sorted(names))} | "
            f"{', '.join(sorted(where))} | {message.replace('|', '/')} |"
        )
    out += [
        "",
        "Withheld (`QueryResponse.withheld[].reason`; the call succeeds):",
        "",
        "| reason | level |",
        "|---|---|",
    ]
    for level in ("item", "record"):
        out += [f"| `{reason}` | {level} |" for reason in levels[level]]
    out += [
        "",
        "Per-record rejections of a submission or a push (`RecordResult.violations[].reason`):",
        "",
        "| reason | description |",
        "|---|---|",
    ]
    out += [
        f"| `{reason}` | {text.replace('|', '/')} |" for reason, text in submission_rejections()
    ]
    return "\n".join(out) + "\n"


def updated(document: str, table: str) -> str:
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/clients.md is stale")
    args = parser.parse_args()
    document = DOC.read_text(encoding="utf-8")
    fresh = updated(document, render())
    if args.check:
        if fresh != document:
            print("docs/clients.md: the reasons tables are stale; run scripts/gen_reasons.py")
            return 1
        return 0
    DOC.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
