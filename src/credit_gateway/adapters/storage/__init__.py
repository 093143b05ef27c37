"""Persistence: SQLAlchemy tables, the engine, repositories. Rows never leave this package."""
