"""DiscoveryService: what a participant can learn instead of being told codes out of band.

GetCatalog answers the catalog in force (items, their disclosure level for each kind of subject,
the purposes); ListAgreements the caller's own agreements, selected by the participant id of
the certificate-bound token the interceptor verified, never by anything in the request. Both are
reads: one hand-off to a database thread each (the catalog is cached and re-read at most every
few seconds, CatalogCache).
"""

from __future__ import annotations

from typing import Any

import grpc

from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.interceptor import current_call
from credit_gateway.adapters.grpc.v1 import common_pb2, discovery_pb2, discovery_pb2_grpc
from credit_gateway.adapters.storage import registry
from credit_gateway.domain.agreements import Agreement, AgreementStatus
from credit_gateway.domain.catalog import Art16Class, Catalog, CatalogItem, DisclosureLevel
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway

_Ctx = grpc.aio.ServicerContext[Any, Any]

_KIND = {k: getattr(common_pb2, f"SUBJECT_KIND_{k.name}") for k in SubjectKind}
_LEVEL = {v: getattr(common_pb2, f"DISCLOSURE_LEVEL_{v.name}") for v in DisclosureLevel}


class DiscoveryServicer(discovery_pb2_grpc.DiscoveryServiceServicer):
    def __init__(self, gateway: Gateway, blocking: Blocking) -> None:
        self.gateway = gateway
        self.blocking = blocking

    async def GetCatalog(
        self, request: discovery_pb2.GetCatalogRequest, context: _Ctx
    ) -> discovery_pb2.Catalog:
        return catalog_to_pb(await self.blocking.call(self.gateway.catalog.get))

    async def ListAgreements(
        self, request: discovery_pb2.ListAgreementsRequest, context: _Ctx
    ) -> discovery_pb2.ListAgreementsResponse:
        # The participant whose standing the interceptor read for this call: its own rows only.
        caller = current_call().client.id
        found = await self.blocking.call(registry.list_agreements, self.gateway.db, caller)
        return discovery_pb2.ListAgreementsResponse(
            agreements=[agreement_to_pb(a, status) for a, status in found]
        )


def catalog_to_pb(catalog: Catalog) -> discovery_pb2.Catalog:
    return discovery_pb2.Catalog(
        version=catalog.version,
        items=[_item(catalog.items[code]) for code in sorted(catalog.items)],
        purposes=[
            discovery_pb2.Purpose(
                code=p.code,
                title=p.title,
                max_validity_days=p.max_validity_days,
                max_data_range_days=p.max_data_range_days,
                max_uses=p.max_uses,
            )
            for p in sorted(catalog.purposes.values(), key=lambda p: p.code)
        ],
    )


def _item(item: CatalogItem) -> discovery_pb2.CatalogItem:
    rule = item.period_rule
    return discovery_pb2.CatalogItem(
        code=item.code,
        title=item.title,
        category=item.category.value,
        info_kind=item.info_kind.value,
        polarity=item.polarity.value,
        # In the enum's order, so that the answer is the same bytes every time.
        disclosure=[
            discovery_pb2.ItemDisclosure(
                subject_kind=_KIND[kind], level=_LEVEL[item.level_for(kind)]
            )
            for kind in SubjectKind
        ],
        disclosure_period_days=item.disclosure_period_days,
        written_consent=item.art16 is Art16Class.WRITTEN_CONSENT,
        disclosure_period_field="" if rule is None else rule.field,
        disclosure_periods=[
            discovery_pb2.DisclosurePeriod(
                value=value, shortest_days=period.shortest, longest_days=period.longest
            )
            for value, period in sorted(rule.periods.items() if rule else ())
        ],
        open_to_minors_by_state_provision=item.open_to_minors_by_state_provision,
    )


def agreement_to_pb(
    agreement: Agreement, status: AgreementStatus
) -> discovery_pb2.AgreementSummary:
    return discovery_pb2.AgreementSummary(
        agreement_id=agreement.id,
        operations=sorted(o.value for o in agreement.operations),
        item_codes=sorted(agreement.items),
        categories=sorted(c.value for c in agreement.categories),
        purposes=sorted(agreement.purposes),
        levels=[_LEVEL[v] for v in DisclosureLevel if v in agreement.levels],
        subject_kinds=[_KIND[k] for k in SubjectKind if k in agreement.subject_kinds],
        calls_per_day=agreement.quotas.calls_per_day,
        records_per_day=agreement.quotas.records_per_day,
        valid_from=to_timestamp(agreement.valid_from),
        valid_until=to_timestamp(agreement.valid_until),
        status=status.value,
    )
