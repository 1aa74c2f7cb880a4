"""Alembic migrations for bastion's schema; run them with :func:`bastion.store.migrate`."""
