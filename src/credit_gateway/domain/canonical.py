"""Canonical JSON bytes (RFC 8785, JSON Canonicalization Scheme), the form every signature in the
gateway covers: records, agreements, consent artefacts, audit entries.

Object members sorted by their UTF-16 code units (RFC 8785 section 3.2.3), no insignificant
white space, strings escaped minimally (3.2.2.2), numbers in ECMAScript's shortest form
(3.2.2.3). The serialisation is Trail of Bits' `rfc8785` (README: it passes the RFC's vectors in
tests/unit/domain/test_canonical.py and is faster than the encoder it replaced). What it refuses
is refused here as CanonicalError: non-finite numbers, integers beyond IEEE 754 doubles' exact
range (which a JCS verifier in another language could not reproduce), non-string keys, lone
surrogates, and anything that is not a dict, list, tuple, str, int, float, bool or None.

Most values take a faster road to the same bytes: the standard library's C JSON encoder, which
for these values writes exactly what RFC 8785 does (the same minimal escapes with lowercase hex,
no white space). It is taken only when every number is an integer in the exact range (a float
would be written in Python's repr, not ECMAScript's shortest form) and no character lies beyond
the Basic Multilingual Plane (only there does Python's code-point order of keys differ from
UTF-16's); anything else, or anything the encoder refuses, goes through `rfc8785`.
tests/unit/domain/test_canonical.py checks the two give the same bytes on arbitrary JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

import rfc8785

from credit_gateway.errors import DomainError

MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalError(DomainError):
    """Bytes that are not strict JSON, or a value with no canonical form."""

    default_reason = "BAD_JSON"


_ENCODE = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")


def canonical_bytes(value: Any) -> bytes:
    try:
        if _plain(value):
            text = _ENCODE(value)
            if _BEYOND_BMP.search(text) is None:
                return text.encode("utf-8")  # a lone surrogate fails here: rfc8785 says why
    except (UnicodeEncodeError, RecursionError):
        pass
    return _rfc8785(value)


def _plain(value: Any) -> bool:
    """Only exact dicts with string keys, lists, tuples, strings, booleans, None and integers
    in the exact range: what the standard encoder writes as RFC 8785 does."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    return False


def _rfc8785(value: Any) -> bytes:
    try:
        return rfc8785.dumps(value)
    # UnicodeEncodeError: a lone surrogate in a key, met while sorting by UTF-16 code units.
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
        raise CanonicalError(f"no canonical JSON form: {exc}") from exc


def string_set(values: Iterable[str]) -> list[str]:
    """A member that holds a set of strings (a consent's items and categories): each string once,
    sorted by UTF-16 code units like object members, which is what JavaScript's default
    `Array.prototype.sort` does, so the order the caller listed them in never changes the bytes."""
    return sorted(set(values), key=lambda s: s.encode("utf-16-be", "surrogatepass"))


def parse_json_object(data: bytes) -> dict[str, Any]:
    """Strict JSON: UTF-8, an object at the top, no duplicate keys, no NaN/Infinity."""
    try:
        value = _DECODER.decode(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CanonicalError("not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise CanonicalError(f"not JSON: {exc.msg} at {exc.pos}") from exc
    if not isinstance(value, dict):
        raise CanonicalError("not a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # the usual case decided in C; the loop only to say which
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise CanonicalError(f"duplicate key {key!r}")
            seen.add(key)
    return result


def _no_constants(name: str) -> Any:
    raise CanonicalError(f"{name} is not JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 overflows to inf: not a JSON number we can keep
        raise CanonicalError(f"number {text} is out of range")
    return value


def _parse_int(text: str) -> int | float:
    """JSON numbers are IEEE doubles (RFC 8785 section 3.2.2.3): an integer beyond the exact
    range is the double it denotes, which is how canonical_bytes writes it back."""
    value = int(text)
    return value if abs(value) <= MAX_SAFE_INTEGER else _parse_float(text)


# One decoder for every parse: json.loads with hooks builds a new one each call (~15 µs).
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_constant=_no_constants,
    parse_float=_parse_float,
    parse_int=_parse_int,
)
