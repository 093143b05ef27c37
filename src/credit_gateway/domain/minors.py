"""Age on the gateway's clock, for the rules that depend on it: a natural person under 14 cannot
consent alone (PIPL Art 31) and its information is not open (catalog items say otherwise only
by a State provision); a guardian is an adult (Civil Code Art 17: 18 years)."""

from __future__ import annotations

from datetime import date, datetime

from credit_gateway.domain.timestamps import civil_date

MINOR_AGE = 14  # PIPL Art 31 / 28: personal information of a minor under 14 is sensitive
ADULT_AGE = 18  # Civil Code Art 17


def age_on(born: date, now: datetime) -> int:
    today = civil_date(now)
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def is_minor(born: date | None, now: datetime) -> bool:
    """Under MINOR_AGE at `now`. None (not a natural person's resident ID): never a minor."""
    return born is not None and age_on(born, now) < MINOR_AGE


def is_adult(born: date, now: datetime) -> bool:
    return age_on(born, now) >= ADULT_AGE
