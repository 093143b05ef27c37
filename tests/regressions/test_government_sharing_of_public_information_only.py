"""Government sharing gave a department more than Art 20 para 1 allows.

Until 5805392 ShareGovernment released every item of the department's agreement at the OPEN,
AUTHORIZED and GOVERNMENT levels, so a person's tax paid (an Art 16 para 2 (2) item, released
only with the person's written consent) and market information (not public credit information,
Art 3) reached a government department without the subject's consent (issue #11, item 2). The
policy now withholds them on the government channel, before the level and the agreement
(domain/policy.py, rows art20p1-*). The longer story: tests/integration/test_government_sharing.py.
"""

from __future__ import annotations

from support.government import WITHHELD, government_world, share
from support.harness import PERSON, Harness


def test_a_persons_tax_paid_and_market_records_do_not_reach_a_department(
    harness: Harness,
) -> None:
    world = government_world(harness)

    answer = share(world, PERSON, "ADM.PERMIT", *WITHHELD)

    assert [r.record_id for r in answer.records] == [world.ids["p_permit"]]
    assert {(w.item_code, w.reason) for w in answer.withheld} == set(WITHHELD.items())
