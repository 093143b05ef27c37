"""An agency presenting a consent token after it expired, unseen by the subject.

Fixed in 070a51c ("an expired consent token's refusal is filed under its consent"): the refusal
named no consent, so the subject's ListInquiries under the consent did not show that its
grantee went on trying after the consent had lapsed. ConsentTokenError now carries the consent
id of a token whose signature verified (an expired one), and the refusal is filed under it.
"""

from __future__ import annotations

import grpc
from support.rpc import refusal
from support.scenario import Consented


def test_the_expired_attempt_is_listed_under_the_consent(world: Consented) -> None:
    granted = world.granted()
    world.h.clock.advance(days=30, seconds=1)  # past valid_until
    assert refusal(lambda: world.query(granted.token.token)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_EXPIRED",
    )
    assert world.inquiries(granted.consent.consent_id) == [
        ("zx-credit", "REFUSED", ["CONSENT_EXPIRED"])
    ]
