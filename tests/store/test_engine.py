from __future__ import annotations

import pytest

from bastion.errors import ConfigError
from bastion.store import async_engine, async_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///bastion.db", "sqlite+aiosqlite:///bastion.db"),
        ("sqlite:////abs/b.db", "sqlite+aiosqlite:////abs/b.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_async_url(url: str, expected: str) -> None:
    assert async_url(url) == expected


def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        async_url("mysql://u@h/db")


async def test_memory_sqlite_shares_one_connection() -> None:
    engine = async_engine("sqlite:///:memory:")
    assert engine.pool.__class__.__name__ == "StaticPool"
    await engine.dispose()


async def test_postgres_pool_is_bounded() -> None:
    engine = async_engine("postgresql://u@127.0.0.1/db")
    assert engine.pool.size() == 10  # type: ignore[attr-defined]
    await engine.dispose()
