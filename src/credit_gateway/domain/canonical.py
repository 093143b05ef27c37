"""Canonical JSON bytes (RFC 8785, JSON Canonicalization Scheme), the form every signature in the
gateway covers: records, agreements, consent artefacts, audit entries.

Object members sorted by their UTF-16 code units (RFC 8785 section 3.2.3), no insignificant
white space, strings escaped minimally (3.2.2.2), numbers in ECMAScript's shortest form
(3.2.2.3). Non-finite numbers and integers beyond IEEE 754 doubles' exact range (which a JCS
verifier in another language could not reproduce) are refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from credit_gateway.errors import DomainError

MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalError(DomainError):
    """Bytes that are not strict JSON, or a value with no canonical form."""

    default_reason = "BAD_JSON"


def canonical_bytes(value: Any) -> bytes:
    try:
        return _encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8 form
        raise CanonicalError("string is not valid Unicode") from exc


def parse_json_object(data: bytes) -> dict[str, Any]:
    """Strict JSON: UTF-8, an object at the top, no duplicate keys, no NaN/Infinity."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, val in pairs:
            if key in result:
                raise CanonicalError(f"duplicate key {key!r}")
            result[key] = val
        return result

    def no_constants(name: str) -> Any:
        raise CanonicalError(f"{name} is not JSON")

    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=no_duplicates,
            parse_constant=no_constants,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except UnicodeDecodeError as exc:
        raise CanonicalError("not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise CanonicalError(f"not JSON: {exc.msg} at {exc.pos}") from exc
    if not isinstance(value, dict):
        raise CanonicalError("not a JSON object")
    return value


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


def _encode(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalError(f"integer {value} is outside the exact range of a double")
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalError("object keys must be strings")
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(f"{_encode(k)}:{_encode(v)}" for k, v in items) + "}"
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    raise CanonicalError(f"{type(value).__name__} is not a JSON value")


def _number(x: float) -> str:
    """ECMAScript Number.prototype.toString for finite doubles (ECMA-262 6.1.6.1.20)."""
    if not math.isfinite(x):
        raise CanonicalError("NaN and Infinity are not JSON")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr gives the shortest round-tripping digits; re-lay them out the ECMAScript way.
    mantissa, _, exp = repr(abs(x)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (
        (int_part + frac_part.rstrip("0")).lstrip("0") if frac_part != "0" else int_part.lstrip("0")
    )
    digits = digits.rstrip("0") or "0"
    # n: position of the decimal point relative to the digit string (value = 0.d1d2... * 10^n)
    lead_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
    n = len(int_part) - lead_zeros + (int(exp) if exp else 0)
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = (
            digits[0]
            + ("." + digits[1:] if k > 1 else "")
            + "e"
            + ("+" if e >= 0 else "-")
            + str(abs(e))
        )
    return sign + out
