"""`credit-gateway catalog load FILE` refuses a catalog whose item schema names Art 16 para 2 (1)
prohibited information, however spelled and wherever in the schema (domain/art16.py,
domain/catalog.py): one line naming the item and the field, exit status 2, and the current
catalog stays as it was. A name that only looks like one loads."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.audit_entries import stored as audit_entries
from support.harness import CATALOG_FILE, Harness

from credit_gateway.adapters.storage import catalog as catalog_store
from credit_gateway.adapters.storage.tables import CatalogRow
from credit_gateway.cli.main import EXIT_REFUSED, main

pytestmark = pytest.mark.usefixtures("no_outside_settings")


SHIPPED: dict[str, Any] = json.loads(CATALOG_FILE.read_text())


def catalog_with(item_code: str, schema_edit: dict[str, Any], version: str) -> dict[str, Any]:
    """The shipped catalog as a new version, with keywords added to one item's schema."""
    document = copy.deepcopy(SHIPPED)
    document["version"] = version
    (item,) = [i for i in document["items"] if i["code"] == item_code]
    for keyword, value in schema_edit.items():
        if isinstance(value, dict) and isinstance(item["schema"].get(keyword), dict):
            item["schema"][keyword].update(value)
        else:
            item["schema"][keyword] = value
    return document


def load(harness: Harness, tmp_path: Path, document: dict[str, Any]) -> int:
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps(document, ensure_ascii=False))
    config = harness.write_config(tmp_path / "gateway.toml")
    return main(["--config", str(config), "catalog", "load", str(catalog_file)])


def catalogs(harness: Harness) -> tuple[str | None, list[tuple[str, bytes]]]:
    """The current version, and every stored catalog with its content."""
    with harness.db.transaction(write=False) as session:
        rows = session.execute(select(CatalogRow.version, CatalogRow.document)).all()
        return catalog_store.current_version(session), sorted((v, bytes(d)) for v, d in rows)


REFUSED = {
    "nested-camel-case": (
        "ADM.PERMIT",
        {"properties": {"holder": {"type": "object", "properties": {"bloodType": {}}}}},
        "'bloodType' at $.properties.holder.properties.bloodType",
    ),
    "chinese-in-required": (
        "TAX.ARREARS",
        {"required": ["amount_cny", "宗教信仰"]},
        "'宗教信仰' at $.required[1]",
    ),
    "pattern-properties": (
        "COM.VOLUNTEER",
        {"patternProperties": {"^medical[-_]?records?$": {"type": "string"}}},
        "'^medical[-_]?records?$' at $.patternProperties.^medical[-_]?records?$",
    ),
}


@pytest.mark.parametrize(
    ("item_code", "schema_edit", "names"), REFUSED.values(), ids=REFUSED.keys()
)
def test_a_catalog_naming_a_prohibited_field_is_refused_and_the_current_one_stays(
    harness: Harness,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    item_code: str,
    schema_edit: dict[str, Any],
    names: str,
) -> None:
    before = catalogs(harness)
    assert before[0] == SHIPPED["version"]
    capsys.readouterr()

    status = load(harness, tmp_path, catalog_with(item_code, schema_edit, "2099.1"))

    assert status == EXIT_REFUSED == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(
        f"credit-gateway: error: {item_code}: its schema names the field {names}, "
    )
    assert "Art 16" in line
    assert catalogs(harness) == before
    assert harness.gateway.catalog.get().version == SHIPPED["version"]


def test_a_name_that_only_looks_prohibited_loads(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = catalog_with(
        "REG.ENTERPRISE",
        {"properties": {"religious_holiday_closure": {"type": "boolean"}}},
        "2099.2",
    )

    assert load(harness, tmp_path, document) == 0

    assert "catalog: version 2099.2 current" in capsys.readouterr().out
    current, stored = catalogs(harness)
    assert (current, [v for v, _ in stored]) == ("2099.2", sorted([SHIPPED["version"], "2099.2"]))
    # The operator's load is a decision on record, and a refused one left nothing.
    entries = audit_entries(harness.db, "catalog.load")
    assert [(e["caller"], e["outcome"], e["items"]) for e in entries] == [
        ("operator", "LOADED", ["2099.2"])
    ]
