"""A resident ID's birth date is a date in China: a child born today in Beijing, in the eight
hours before UTC's date turns, was refused as "born in the future" while ages were counted on
the Beijing date (domain/minors.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from credit_gateway.domain.identifiers import SubjectKind, resident_id_check_character
from credit_gateway.domain.release import parse_subject
from credit_gateway.errors import InvalidArgument

NOW = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # 2 March, 04:00 in Beijing


def resident_id(birth: str) -> str:
    first17 = "110105" + birth + "002"
    return first17 + resident_id_check_character(first17)


def test_born_today_in_beijing_is_not_in_the_future() -> None:
    code = resident_id("20260302")
    assert parse_subject(code, NOW) == (SubjectKind.NATURAL_PERSON, code)


def test_born_tomorrow_in_beijing_is() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_subject(resident_id("20260303"), NOW)
    assert "future" in raised.value.message
