"""A consent granted to an agency that may not act: suspended, or its licence lapsed.

Fixed in dcc024f ("grantee licence"): the grant checked only that the grantee was a registered,
active agency with an agreement, so a subject could be led to consent to an agency whose
licence had expired (Art 20 para 2). The grantee must now be able to act (active, licence
valid) when the consent is granted, or the grant is GRANTEE_NOT_ELIGIBLE and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import grpc
import pytest
from support.rpc import field_violations, status_of
from support.scenario import Consented, count

from credit_gateway.adapters.grpc.v1 import consent_pb2
from credit_gateway.adapters.storage.tables import ConsentRow
from credit_gateway.services import operator as registry


def _lapsed(world: Consented) -> None:
    yesterday = world.h.clock.now - timedelta(days=1)
    registry.change_licence(world.h.settings, "zx-credit", valid_until=yesterday, revoked=None)


def _revoked(world: Consented) -> None:
    registry.change_licence(world.h.settings, "zx-credit", valid_until=None, revoked=True)


def _suspended(world: Consented) -> None:
    registry.suspend_participant(world.h.settings, "zx-credit")


@pytest.mark.parametrize("lose_standing", [_lapsed, _revoked, _suspended])
def test_a_grant_to_a_grantee_that_may_not_act_is_refused(
    world: Consented, lose_standing: Callable[[Consented], None]
) -> None:
    lose_standing(world)
    with pytest.raises(grpc.RpcError) as caught:
        world.consents.GrantConsent(
            consent_pb2.GrantConsentRequest(terms=world.terms()),
            metadata=world.subject_md(),
            timeout=10,
        )
    assert status_of(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "GRANTEE_NOT_ELIGIBLE")
    assert field_violations(caught.value) == {"terms.grantee"}
    assert count(world.h.db, ConsentRow) == 0
