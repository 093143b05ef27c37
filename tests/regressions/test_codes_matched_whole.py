"""Item, purpose and participant codes with a trailing newline taken as valid.

Fixed in 45b4723: the codes were checked with `re.match` and a `$` anchor, which also matches
just before a final newline, so "ADM.PUNISHMENT\\n" or "zx-credit\\n" passed: a second spelling
of a code that compares unequal to the real one (a catalog item, an agreement's party, a
consent's grantee no other record names). They are matched whole (`fullmatch`) now.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from support.harness import CATALOG_FILE

from credit_gateway.domain.catalog import Catalog, CatalogError
from credit_gateway.domain.participants import Participant, ParticipantKind, ParticipantStatus
from credit_gateway.errors import DomainError

DOCUMENT: dict[str, Any] = json.loads(CATALOG_FILE.read_text())


@pytest.mark.parametrize("part", ["items", "purposes"])
def test_a_catalog_code_with_a_trailing_newline_is_refused(part: str) -> None:
    document = copy.deepcopy(DOCUMENT)
    document[part][0]["code"] += "\n"
    with pytest.raises(CatalogError, match="code"):
        Catalog.from_document(document)
    Catalog.from_document(DOCUMENT)  # the same document, unedited, is a catalog


def test_a_participant_id_with_a_trailing_newline_is_refused() -> None:
    kind, status = ParticipantKind.PROVIDING_UNIT, ParticipantStatus.ACTIVE
    Participant("hubei-amr", kind, "91350100M000100Y43", "AMR", status, frozenset())
    with pytest.raises(DomainError, match="participant id"):
        Participant("hubei-amr\n", kind, "91350100M000100Y43", "AMR", status, frozenset())
