"""Schema migrations with Alembic, driven from code (no alembic.ini in the working directory)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from credit_gateway.adapters.storage.tables import Base

_HERE = Path(__file__).resolve().parent / "migrations"


def _config(engine: Engine, connection: object) -> Config:
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(_config(engine, connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(_config(engine, connection), revision)


def drift(engine: Engine) -> list[object]:
    """What differs between the migrated database and the tables (empty: none)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a migration against a database at head (developers only)."""
    with engine.begin() as connection:
        command.revision(_config(engine, connection), message=message, autogenerate=True)
