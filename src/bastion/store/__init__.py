"""Durable state on SQLAlchemy 2 (SQLite by default, PostgreSQL by URL) with Alembic."""

from bastion.store._db import RecordExists, RecordNotFound
from bastion.store.apikeys import ApiKeyRecord, ApiKeyStore
from bastion.store.context import StoreContext, load_settings, open_store, run_with_store
from bastion.store.engine import async_engine, async_url
from bastion.store.migrate import check_schema, migrate
from bastion.store.users import UserRecord, UserStore

__all__ = [
    "ApiKeyRecord",
    "ApiKeyStore",
    "RecordExists",
    "RecordNotFound",
    "StoreContext",
    "UserRecord",
    "UserStore",
    "async_engine",
    "async_url",
    "check_schema",
    "load_settings",
    "migrate",
    "open_store",
    "run_with_store",
]
