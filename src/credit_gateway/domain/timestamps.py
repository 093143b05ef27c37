"""The one way an instant is written into bytes that are signed or hashed (docs/canonical.md).

RFC 3339 in UTC with `Z`, and a fraction of 0, 3 or 6 digits: none for a whole second, 3 for a
whole millisecond, 6 otherwise. It is protobuf's JSON form of a `google.protobuf.Timestamp`
(which every protobuf runtime produces, e.g. Python's `Timestamp.ToJsonString()`), limited to the
gateway's microseconds; JavaScript's `Date.toISOString()` writes it for any instant whose
milliseconds are not zero (whole seconds: drop its `.000`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from credit_gateway.errors import DomainError

REASON = "TIMESTAMP_INVALID"
# China Standard Time, UTC+8 all year: the civil date a resident ID's birth date is written in.
CHINA = timezone(timedelta(hours=8))


def civil_date(now: datetime) -> date:
    """The date in China at `now`: a person born on 1 March is born, and turns 14, at midnight
    Beijing time, not at 08:00 (midnight UTC)."""
    return now.astimezone(CHINA).date()


def canonical_timestamp(value: datetime, what: str = "timestamp") -> str:
    """`value` as the canonical string; a naive datetime is refused, since the instant it names
    depends on the zone of whoever reads it, and an aware one is converted to UTC."""
    if value.utcoffset() is None:
        raise DomainError(f"{what} has no UTC offset: {value.isoformat()}", reason=REASON)
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01 at +08:00 is before the first UTC instant a datetime holds
        raise DomainError(f"{what} is out of range: {value.isoformat()}", reason=REASON) from None
    micros = utc.microsecond
    digits = "seconds" if micros == 0 else "milliseconds" if micros % 1000 == 0 else "microseconds"
    return utc.replace(tzinfo=None).isoformat(timespec=digits) + "Z"
