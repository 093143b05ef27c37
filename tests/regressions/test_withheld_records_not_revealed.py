"""Record-level withholds told to a participant, revealing that the records exist.

Fixed in 662cec8: an answer said how many records of an item were withheld and why (a
punishment past its disclosure period, a record out of service or under objection, one outside
the consent's data range), which told any caller, an open inquiry's included, that such a
record exists. Participants now see the item-level refusals and their own record quota running
out; only the subject's own answer lists the rest. The audit entry keeps every reason.
"""

from __future__ import annotations

import pytest

from credit_gateway.domain.decisions import (
    Decision,
    ItemWithheld,
    Reason,
    RecordRelease,
    RecordWithheld,
)
from credit_gateway.domain.policy import Channel
from credit_gateway.domain.release import WithheldSummary, summarise

HIDDEN = (
    Reason.DISCLOSURE_PERIOD_ENDED,
    Reason.OUTSIDE_CONSENT_DATA_RANGE,
    Reason.OBJECTION_SUSPENDED,
    Reason.NOT_IN_SERVICE,
)
DECISION = Decision(
    refusal=None,
    releases=(RecordRelease("r-0", "ADM.PUNISHMENT"),),
    withheld_records=(
        *(RecordWithheld(f"r-{i}", "ADM.PUNISHMENT", reason) for i, reason in enumerate(HIDDEN)),
        RecordWithheld("r-9", "ADM.PUNISHMENT", Reason.QUOTA_RECORDS_EXHAUSTED),
    ),
    withheld_items=(ItemWithheld("TAX.PAID", Reason.ITEM_NOT_CONSENTED),),
)


@pytest.mark.parametrize(
    "channel", [c for c in Channel if c is not Channel.SELF_INQUIRY], ids=lambda c: c.value
)
def test_a_participant_sees_item_refusals_and_its_quota_only(channel: Channel) -> None:
    assert summarise(DECISION, channel) == (
        WithheldSummary("TAX.PAID", "ITEM_NOT_CONSENTED", 0),
        WithheldSummary("ADM.PUNISHMENT", "QUOTA_RECORDS_EXHAUSTED", 1),
    )


def test_the_subject_sees_every_reason() -> None:
    shown = {(s.reason, s.count) for s in summarise(DECISION, Channel.SELF_INQUIRY)}
    assert shown >= {(reason.value, 1) for reason in HIDDEN}
