from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.store._db import postgres_database


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of the test's own, dropped after it."""
    with postgres_database(pg_url) as url:
        yield url
