"""Alembic revisions (Alembic itself skips this file)."""
