"""A catalog item's payload schema as one Python predicate, for the schemas that need no more.

`jsonschema` decides every payload and says what is wrong with a bad one, but walking a schema
through its general machinery costs a record more than its signature's canonical bytes do. The
catalog's schemas use a handful of keywords: `compiled` turns a schema made only of those into
a predicate that answers exactly what Draft 2020-12 validation answers, and refuses (None) any
other schema, which then goes through `jsonschema` alone. A payload the predicate refuses goes
through `jsonschema` too, for its error; the predicate never has the last word on a refusal.

The keywords, with Draft 2020-12's meaning (tests/unit/domain/test_schemas.py holds each to
jsonschema's answer on arbitrary payloads): `type` (one name), `properties`, `required`,
`additionalProperties: false`, `minLength`/`maxLength` (code points), `pattern` (re.search, as
jsonschema), `minimum`/`maximum`, `enum` of strings; `$schema`, `title` and `description` are
annotations. Each applies only to instances of its type, as in the specification.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset({"$schema", "title", "description"})
_KEYWORDS = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "enum",
}


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _is_integer(value: Any) -> bool:
    # Draft 2020-12: a number with a zero fractional part is an integer (1.0 is one).
    return type(value) is int or (type(value) is float and value.is_integer())


_TYPES: dict[str, Check] = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str,
    "number": _is_number,
    "integer": _is_integer,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}


def compiled(schema: Mapping[str, Any]) -> Check | None:
    """The schema as a predicate, or None when it uses anything this module does not take."""
    try:
        return _compile(schema)
    except _Unsupported:
        return None


class _Unsupported(Exception):
    pass


def _compile(schema: Any) -> Check:
    if not isinstance(schema, Mapping) or not set(schema) <= _KEYWORDS:
        raise _Unsupported
    checks: list[Check] = []
    if "type" in schema:
        kind = schema["type"]
        if not isinstance(kind, str) or kind not in _TYPES:
            raise _Unsupported
        checks.append(_TYPES[kind])
    checks += _string_checks(schema) + _number_checks(schema) + _object_checks(schema)
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not all(type(v) is str for v in values):
            raise _Unsupported  # jsonschema's equality tells 1 from True; strings need none
        allowed = frozenset(values)
        checks.append(lambda v: type(v) is str and v in allowed)
    return _every(checks)


def _every(checks: list[Check]) -> Check:
    """All of `checks` (plain loops: this runs for every member of every record)."""
    if len(checks) == 1:
        return checks[0]

    def every(value: Any) -> bool:
        for check in checks:  # noqa: SIM110 - a generator in all() costs more, every member
            if not check(value):
                return False
        return True

    return every


def _string_checks(schema: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    shortest, longest = schema.get("minLength", 0), schema.get("maxLength")
    for bound in (shortest, longest):
        if bound is not None and type(bound) is not int:
            raise _Unsupported
    if shortest or longest is not None:
        top = longest if longest is not None else float("inf")
        checks.append(lambda v: type(v) is not str or shortest <= len(v) <= top)
    if "pattern" in schema:
        if not isinstance(schema["pattern"], str):
            raise _Unsupported
        search = re.compile(schema["pattern"]).search
        checks.append(lambda v: type(v) is not str or search(v) is not None)
    return checks


def _holds(holds: Callable[[Any, Any], bool], bound: Any, value: Any) -> bool:
    return not _is_number(value) or holds(value, bound)


def _number_checks(schema: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    for keyword, holds in (("minimum", operator.ge), ("maximum", operator.le)):
        if keyword not in schema:
            continue
        bound = schema[keyword]
        if not _is_number(bound):
            raise _Unsupported
        checks.append(functools.partial(_holds, holds, bound))
    return checks


def _object_checks(schema: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise _Unsupported
    members = {name: _compile(sub) for name, sub in properties.items()}
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
        raise _Unsupported
    closed = schema.get("additionalProperties", True)
    if type(closed) is not bool:
        raise _Unsupported  # a schema for the other members: not taken
    names = frozenset(members)
    checked = tuple(members.items())

    def check(v: Any) -> bool:
        if type(v) is not dict:
            return True
        if closed is False and not names.issuperset(v):
            return False
        for name in required:
            if name not in v:
                return False
        for name, member in checked:  # noqa: SIM110 - as in _every
            if name in v and not member(v[name]):
                return False
        return True

    if members or required or closed is False:
        checks.append(check)
    return checks
