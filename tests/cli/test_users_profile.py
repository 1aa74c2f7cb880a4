"""``bastion users add/profile --email --name``: the OpenID Connect claims of a user."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bastion.store import open_store
from bastion.store.models import User
from tests.cli.test_users_cli import invoke, make_config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_config(tmp_path)


def claims(config: Path, name: str) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        async with open_store(config) as ctx, ctx.engine.connect() as conn:
            row = (
                await conn.execute(select(User.__table__).where(User.__table__.c.username == name))
            ).one()
        return {"email": row.email, "email_verified": row.email_verified, "name": row.name}

    return asyncio.run(get())


def test_add_with_email_and_name(config: Path) -> None:
    args = ["--email", "alice@example.com", "--name", "Alice Liddell", "--email-verified"]
    result = invoke(config, "add", "alice", *args, "--password-stdin", input="pw pw pw 1 okay\n")
    assert result.exit_code == 0, result.output
    assert claims(config, "alice") == {
        "email": "alice@example.com", "email_verified": True, "name": "Alice Liddell"}  # fmt: skip


def test_add_without_them_leaves_them_empty(config: Path) -> None:
    assert (
        invoke(config, "add", "bob", "--password-stdin", input="pw pw pw 1 okay\n").exit_code == 0
    )
    assert claims(config, "bob") == {"email": None, "email_verified": False, "name": None}


def test_profile_sets_changes_and_clears(config: Path) -> None:
    assert (
        invoke(config, "add", "bob", "--password-stdin", input="pw pw pw 1 okay\n").exit_code == 0
    )
    done = invoke(config, "profile", "bob", "--email", "bob@example.com", "--email-verified")
    assert done.exit_code == 0, done.output
    assert claims(config, "bob") == {
        "email": "bob@example.com",
        "email_verified": True,
        "name": None,
    }
    # A new address is unverified unless said otherwise.
    assert (
        invoke(config, "profile", "bob", "--email", "b@example.org", "--name", "Bob").exit_code == 0
    )
    assert claims(config, "bob") == {
        "email": "b@example.org",
        "email_verified": False,
        "name": "Bob",
    }
    assert invoke(config, "profile", "bob", "--email", "", "--name", "").exit_code == 0
    assert claims(config, "bob") == {"email": None, "email_verified": False, "name": None}


@pytest.mark.parametrize(
    "args",
    [
        ("--email", "not-an-address"),
        ("--email", "a b@example.com"),
        ("--email", "a@localhost"),
        ("--name", "x" * 256),
        ("--name", "new\nline"),
        (),
    ],
)
def test_profile_refuses_bad_values(config: Path, args: tuple[str, ...]) -> None:
    assert (
        invoke(config, "add", "bob", "--password-stdin", input="pw pw pw 1 okay\n").exit_code == 0
    )
    result = invoke(config, "profile", "bob", *args)
    assert result.exit_code == 1
    assert claims(config, "bob") == {"email": None, "email_verified": False, "name": None}


def test_profile_of_an_unknown_user_fails(config: Path) -> None:
    result = invoke(config, "profile", "nobody", "--name", "N")
    assert result.exit_code == 1
    assert "no user 'nobody'" in result.output
