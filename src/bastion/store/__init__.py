"""Durable state on SQLAlchemy 2 (SQLite by default, PostgreSQL by URL) with Alembic."""
