"""``bastion clients`` and ``bastion jwks``, and key rotation without a gap."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bastion.cli import app as root
from bastion.keyring import load_keyring
from bastion.oauth.keys import SigningKeys, ensure_oauth_keys, rotate_oauth_keys
from bastion.store import open_store
from bastion.store.engine import async_engine, session_factory
from bastion.store.models import OAuthClient
from tests.cli.test_users_cli import make_config

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_config(tmp_path)


def invoke(config: Path, *args: str):
    return runner.invoke(root, [*args, "--config", str(config)])


def stored(config: Path) -> list[OAuthClient]:
    async def run() -> list[OAuthClient]:
        async with open_store(config) as ctx, session_factory(ctx.engine)() as session:
            return list(await session.scalars(select(OAuthClient)))

    return asyncio.run(run())


def test_clients_create_prints_the_secret_once_and_stores_only_an_hmac(config: Path) -> None:
    result = invoke(
        config, "clients", "create", "--name", "svc", "--client-id", "svc", "--scopes", "read,write"
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert len(secret) >= 43
    [row] = stored(config)
    key = load_keyring(config.parent / "bastion.key").client_secret_hmac
    assert row.secret_hash == hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
    assert secret not in json.dumps([row.secret_hash, row.name, row.scopes])
    listed = invoke(config, "clients", "list")
    assert "svc" in listed.output
    assert secret not in listed.output


def test_clients_rotate_secret_and_delete(config: Path) -> None:
    first = invoke(config, "clients", "create", "--name", "svc", "--client-id", "svc").stdout
    rotated = invoke(config, "clients", "rotate-secret", "svc")
    assert rotated.exit_code == 0
    assert rotated.stdout.strip() != first.strip()
    assert invoke(config, "clients", "delete", "svc").exit_code == 0
    missing = invoke(config, "clients", "delete", "svc")
    assert missing.exit_code == 1
    assert "no client" in missing.output


def test_clients_create_refuses_bad_metadata(config: Path) -> None:
    bad = invoke(
        config,
        "clients",
        "create",
        "--name",
        "w",
        "--grants",
        "authorization_code",
        "--redirect-uris",
        "http://evil.example/cb",
    )
    assert bad.exit_code == 1
    assert "http is allowed only on loopback" in bad.output
    public = invoke(config, "clients", "create", "--name", "p", "--auth", "none")
    assert public.exit_code == 1
    assert "public client" in public.output


@pytest.mark.parametrize(
    ("content", "reason"), [(None, "No such file or directory"), ("{oops", "not JSON")]
)
def test_clients_create_says_why_a_jwks_file_cannot_be_read(
    config: Path, content: str | None, reason: str
) -> None:
    jwks = config.parent / "jwks.json"
    if content is not None:
        jwks.write_text(content)
    args = ["--name", "k", "--auth", "private_key_jwt", "--jwks-file", str(jwks)]
    result = invoke(config, "clients", "create", *args)
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert f"error: --jwks-file {jwks}: {reason}" in out
    assert "Errno" not in out


def test_jwks_rotate_publishes_ahead_and_list_shows_states(config: Path) -> None:
    assert invoke(config, "jwks", "list").exit_code == 0

    async def prepare() -> None:
        async with open_store(config) as ctx:
            await ensure_oauth_keys(ctx.config.database_url, ctx.keyring)

    asyncio.run(prepare())
    before = invoke(config, "jwks", "list").output
    assert before.count("active") == 3
    assert invoke(config, "jwks", "rotate", "--publish-ahead", "1h").exit_code == 0
    after = invoke(config, "jwks", "list").output
    assert after.count("pending") == 3
    assert after.count("active") == 3


async def test_rotation_has_no_gap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    from bastion.keyring import Keyring
    from bastion.store.migrate import migrate

    await migrate(url)
    keyring = Keyring(master=b"k" * 32)
    now = [1_800_000_000.0]
    clock = lambda: now[0]  # noqa: E731
    await ensure_oauth_keys(url, keyring, clock=clock)
    engine = async_engine(url)
    try:
        keys = SigningKeys(engine, keyring, clock=clock)
        await keys.reload()
        old = keys.signer("ES256").kid
        async with session_factory(engine)() as session, session.begin():
            new = await rotate_oauth_keys(
                session,
                keyring,
                publish_ahead=timedelta(hours=1),
                keep_old_for=timedelta(hours=1),
                clock=clock,
            )
        new_es = next(r.kid for r in new if r.alg == "ES256")
        await keys.reload()
        published = {k["kid"] for k in keys.public_jwks()["keys"]}
        assert keys.signer("ES256").kid == old
        assert {old, new_es} <= published
        now[0] += 3601  # the new key starts signing; the old one is still published
        assert keys.stale()
        await keys.reload()
        published = {k["kid"] for k in keys.public_jwks()["keys"]}
        assert keys.signer("ES256").kid == new_es
        assert old in published
        now[0] += 3600  # the old key's tokens have all expired: unpublished
        await keys.reload()
        assert old not in {k["kid"] for k in keys.public_jwks()["keys"]}
        assert keys.signer("ES256").kid == new_es
    finally:
        await engine.dispose()
