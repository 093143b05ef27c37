"""Catalog versions: each loaded file is kept; one is current."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.tables import CatalogRow
from credit_gateway.domain.canonical import canonical_bytes, parse_json_object
from credit_gateway.domain.catalog import Catalog
from credit_gateway.errors import AlreadyExists


def store_catalog(session: Session, document: dict[str, object], now: datetime) -> Catalog:
    catalog = Catalog.from_document(document)  # validates before anything is written
    data = canonical_bytes(document)
    digest = hashlib.sha256(data).hexdigest()
    existing = session.get(CatalogRow, catalog.version)
    if existing is not None and existing.digest != digest:
        raise AlreadyExists(
            f"catalog version {catalog.version} was loaded with other content",
            reason="CATALOG_VERSION_EXISTS",
        )
    session.execute(update(CatalogRow).values(current=False))
    if existing is None:
        session.add(
            CatalogRow(
                version=catalog.version, document=data, digest=digest, loaded_at=now, current=True
            )
        )
    else:
        existing.current = True
    return catalog


def current_version(session: Session) -> str | None:
    return session.scalar(select(CatalogRow.version).where(CatalogRow.current.is_(True)))


def current_catalog(session: Session) -> Catalog | None:
    row = session.scalar(select(CatalogRow).where(CatalogRow.current.is_(True)))
    return None if row is None else Catalog.from_document(parse_json_object(row.document))
