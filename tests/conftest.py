from __future__ import annotations

import pytest

from tests import _services


@pytest.fixture(scope="session")
def pg_url() -> str:
    return _services.ensure_postgres()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _services.ensure_redis()
