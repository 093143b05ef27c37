"""A consent token used against another subject, hidden from the consent's owner.

Fixed in e66249a: the refusal (CONSENT_OTHER_SUBJECT) was filed under the subject that was
asked about only, so ListInquiries under the consent showed its owner nothing, though the
design promises the subject every inquiry made under each of its consents. Entries are now
listed by consent, whichever subject was asked.
"""

from __future__ import annotations

import grpc
from support.harness import COMPANY
from support.rpc import refusal
from support.scenario import Consented


def test_the_owner_sees_its_consent_used_against_someone_else(world: Consented) -> None:
    granted = world.granted()  # PERSON's consent
    assert refusal(lambda: world.query(granted.token.token, subject=COMPANY)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_OTHER_SUBJECT",
    )
    assert world.inquiries(granted.consent.consent_id) == [
        ("zx-credit", "REFUSED", ["CONSENT_OTHER_SUBJECT"])
    ]
