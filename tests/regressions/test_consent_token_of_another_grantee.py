"""A consent token presented by an agency other than the one the subject consented to.

Guarded since 2ed4303 (exchange/inquiry.py refused `claims.grantee != inquiry.caller_id` as
CONSENT_OTHER_GRANTEE; now domain/release.py `_consent_of`, since 4783921). A consent token is
a bearer pointer: without the check, any agency with an agreement of its own that gets hold of
one (a leak, a reseller) queries the subject's records under the subject's consent. The
refusal is on record under the consent, so its owner sees the attempt. (policy.decide checks
the consent's grantee again: undoing the fix takes both checks.)
"""

from __future__ import annotations

import grpc
from support.rpc import refusal
from support.scenario import Consented


def test_another_agency_presenting_the_token_is_refused_on_record(world: Consented) -> None:
    thief = world.other_agency("thief-credit")
    granted = world.granted()  # to zx-credit
    assert refusal(
        lambda: world.query(
            granted.token.token,
            thief.channel,
            access_token=world.h.token(thief),
            agreement_id="agr-thief-credit",
        )
    ) == (grpc.StatusCode.PERMISSION_DENIED, "CONSENT_OTHER_GRANTEE")
    assert world.inquiries(granted.consent.consent_id) == [
        ("thief-credit", "REFUSED", ["CONSENT_OTHER_GRANTEE"])
    ]
    # The grantee itself is released the records under the same token.
    assert len(world.query(granted.token.token).records) == 1
