"""domain/schemas.compiled answers what jsonschema's Draft 2020-12 validation answers, on the
catalog's own schemas and on schemas made of the keywords it takes, for arbitrary payloads; it
refuses every schema that uses anything else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from support.harness import CATALOG_FILE

from credit_gateway.domain.schemas import compiled

SCHEMAS = {i["code"]: i["schema"] for i in json.loads(CATALOG_FILE.read_text())["items"]}

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 300)
    | st.sampled_from([0.0, 1.0, -0.5, 2.5, 1e20])
    | st.text(max_size=5)
    | st.sampled_from(["", "2026-12-01", "2026-12-01\n", "x" * 201, "x" * 2001, "serious"])
)
VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children)
    ),
    max_leaves=6,
)


def agrees(schema: dict[str, Any], payload: Any) -> None:
    check = compiled(schema)
    assert check is not None
    assert check(payload) == Draft202012Validator(schema).is_valid(payload), payload


def valid_value(sub: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value that meets the member's schema (the catalog's shapes: a typed scalar)."""
    if "enum" in sub:
        return st.sampled_from(sub["enum"])
    if "pattern" in sub:
        return st.from_regex(sub["pattern"], fullmatch=True)
    kind = sub.get("type")
    if kind == "string":
        return st.text(min_size=sub.get("minLength", 0), max_size=sub.get("maxLength", 20))
    if kind in ("number", "integer"):
        low, high = sub.get("minimum", -100), sub.get("maximum", 10**6)
        whole = st.integers(int(low), int(high)) | st.just(float(int(low)))
        return whole if kind == "integer" else whole | st.floats(low, high)
    return VALUES


def payloads_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the schema's required members and some others, each value mostly one that
    meets its schema and sometimes anything: so both answers come up often."""
    members = {
        name: valid_value(sub) | valid_value(sub) | VALUES
        for name, sub in schema.get("properties", {}).items()
    }
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {name: members[name] for name in required},
        optional={**{n: v for n, v in members.items() if n not in required}, "unlisted": VALUES},
    )


@pytest.mark.parametrize("code", sorted(SCHEMAS))
def test_every_catalog_schema_compiles(code: str) -> None:
    assert compiled(SCHEMAS[code]) is not None


@pytest.mark.parametrize("code", sorted(SCHEMAS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_catalog_schema_and_jsonschema_agree_on_every_payload(code: str, data: Any) -> None:
    schema = SCHEMAS[code]
    agrees(schema, data.draw(payloads_for(schema) | VALUES))


NAMES = st.sampled_from(["a", "b", "c"])
LEAF_SCHEMAS = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["object", "array", "string", "number", "integer", "boolean", "null"]
        ),
        "minLength": st.integers(0, 3),
        "maxLength": st.integers(0, 3),
        "pattern": st.sampled_from(["^a", "b$", "[0-9]", "^$"]),
        "minimum": st.integers(-2, 2) | st.sampled_from([0.5, -1.5]),
        "maximum": st.integers(-2, 2) | st.sampled_from([0.5, -1.5]),
        "enum": st.lists(st.sampled_from(["a", "b", ""]), max_size=3),
        "title": st.just("t"),
    },
)
SUPPORTED_SCHEMAS: st.SearchStrategy[dict[str, Any]] = st.recursive(
    LEAF_SCHEMAS,
    lambda children: st.builds(
        lambda base, props, required, closed: {
            **base,
            "properties": props,
            "required": required,
            "additionalProperties": closed,
        },
        LEAF_SCHEMAS,
        st.dictionaries(NAMES, children, max_size=3),
        st.lists(NAMES, max_size=2, unique=True),
        st.booleans(),
    ),
    max_leaves=5,
)
INSTANCES: st.SearchStrategy[Any] = st.recursive(
    SCALARS | st.sampled_from(["a", "b", "ab", "1"]),
    lambda children: st.lists(children, max_size=2) | st.dictionaries(NAMES, children, max_size=3),
    max_leaves=6,
)


@settings(max_examples=600, deadline=None)
@given(SUPPORTED_SCHEMAS, INSTANCES)
def test_any_schema_of_the_keywords_it_takes_agrees_with_jsonschema(
    schema: dict[str, Any], instance: Any
) -> None:
    agrees(schema, instance)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": ["string", "null"]},
        {"format": "date"},
        {"enum": [1, True]},
        {"properties": {"a": True}},
        {"additionalProperties": {"type": "string"}},
        {"patternProperties": {"^x": {}}},
        {"minLength": 1.5},
        {"allOf": [{}]},
        {"$ref": "#/$defs/x"},
    ],
    ids=lambda s: next(iter(s)),
)
def test_a_schema_using_anything_else_is_left_to_jsonschema(schema: dict[str, Any]) -> None:
    assert compiled(schema) is None
