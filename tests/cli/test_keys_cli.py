from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli import app as root
from bastion.cli.keys import app, parse_duration, parse_expiry
from bastion.credentials.apikey import ApiKeys, KeyFormat
from bastion.model import Principal
from bastion.store import ApiKeyRecord, open_store
from tests.cli.test_users_cli import make_config

runner = CliRunner()
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_config(tmp_path)


def invoke(config: Path, *args: str):
    return runner.invoke(app, [*args, "--config", str(config)])


def verify(config: Path, key: str) -> Principal:
    async def run() -> Principal:
        async with open_store(config) as ctx:
            return await ApiKeys.from_keyring(
                ctx.api_keys, ctx.keyring, ctx.config.api_keys
            ).verify(key)

    return asyncio.run(run())


def record(config: Path, key_id: str) -> ApiKeyRecord:
    async def run() -> ApiKeyRecord | None:
        async with open_store(config) as ctx:
            return await ctx.api_keys.get_by_key_id(key_id)

    rec = asyncio.run(run())
    assert rec is not None
    return rec


def create(config: Path, *extra: str) -> str:
    result = invoke(
        config, "create", "--name", "ci", "--subject", "svc-ci", "--scopes", "read, write", *extra
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_create_prints_the_key_once_on_stdout(config: Path) -> None:
    result = invoke(config, "create", "--name", "ci", "--subject", "svc", "--roles", "deployer")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert KeyFormat("bst_").parse(key)
    assert "shown only this once" in result.stderr
    assert key not in result.stderr
    principal = verify(config, key)
    assert (principal.subject, principal.roles) == ("svc", {"deployer"})
    # 90 days by default
    assert principal.expires_at is not None
    days = (principal.expires_at - datetime.now(UTC).timestamp()) / 86400
    assert 89.9 < days <= 90


def test_list_shows_ids_never_secrets(config: Path) -> None:
    key = create(config, "--expires", "never")
    key_id = key[4:16]
    listing = invoke(config, "list")
    assert listing.exit_code == 0
    assert key_id in listing.stdout
    assert "svc-ci" in listing.stdout
    assert "read, write" in listing.stdout
    assert "active" in listing.stdout
    assert key[17:30] not in listing.stdout
    assert record(config, key_id).key_hash not in listing.stdout
    assert invoke(config, "list", "--subject", "nobody").stdout.count("svc-ci") == 0


def test_revoke(config: Path) -> None:
    key = create(config)
    result = invoke(config, "revoke", key[4:16])
    assert result.exit_code == 0, result.output
    assert record(config, key[4:16]).revoked_at is not None
    assert "revoked" in invoke(config, "list").stdout
    with pytest.raises(Exception, match="api_key_revoked"):
        verify(config, key)


def test_rotate_prints_the_new_key_and_keeps_the_old_for_the_overlap(config: Path) -> None:
    old = create(config, "--expires", "30d")
    result = invoke(config, "rotate", old[4:16], "--overlap", "24h")
    assert result.exit_code == 0, result.output
    new = result.stdout.strip()
    assert new != old
    assert "keeps working until" in result.stderr
    assert verify(config, old).scopes == verify(config, new).scopes == {"read", "write"}
    old_rec = record(config, old[4:16])
    assert old_rec.replaced_by == new[4:16]
    assert old_rec.expires_at is not None
    left = old_rec.expires_at - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < left <= timedelta(hours=24)
    assert "rotating" in invoke(config, "list").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["revoke", "aaaaaaaaaaaa"], "no API key 'aaaaaaaaaaaa'"),
        (["rotate", "aaaaaaaaaaaa"], "no API key 'aaaaaaaaaaaa'"),
        (["rotate", "aaaaaaaaaaaa", "--overlap", "soon"], "not a duration"),
        (
            ["create", "--name", "n", "--subject", "s", "--expires", "2001-01-01"],
            "not in the future",
        ),
        (["create", "--name", "n", "--subject", "s", "--expires", "tomorrow"], "not 'never'"),
        (["create", "--name", "", "--subject", "s"], "name must be 1 to 255"),
        (["create", "--name", "n", "--subject", "a\x1b[31m"], "control characters"),
        (["create", "--name", "n", "--subject", "s", "--expires", "99999999999d"], "too far"),
        (["create", "--name", "n", "--subject", "s", "--expires", "9999-12-31"], "too far"),
        (["create", "--name", "n", "--subject", "s", "--expires", "2030-02-30"], "not a date"),
        # Space-separated in identity headers and tokens: "viewer admin" would be two.
        (["create", "--name", "n", "--subject", "s", "--roles", "viewer admin"], "role 'viewer"),
        (["create", "--name", "n", "--subject", "s", "--scopes", "read write"], "scope 'read"),
        (["create", "--name", "n", "--subject", "s", "--scopes", "x" * 129], "1 to 128"),
    ],
)
def test_bad_input_exit_1(config: Path, args: list[str], message: str) -> None:
    result = invoke(config, *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_rotating_a_revoked_key_is_refused(config: Path) -> None:
    key = create(config)
    invoke(config, "revoke", key[4:16])
    result = invoke(config, "rotate", key[4:16])
    assert result.exit_code == 1
    assert "is revoked and cannot be rotated" in result.stderr


def test_missing_database_exits_2(tmp_path: Path) -> None:
    config = make_config(tmp_path, migrated=False)
    result = invoke(config, "create", "--name", "n", "--subject", "s")
    assert result.exit_code == 2
    assert "bastion init" in result.stderr
    assert result.stdout == ""


def test_wired_into_the_root_app(config: Path) -> None:
    result = runner.invoke(root, ["keys", "list", "--config", str(config)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("never", None),
        ("30d", NOW + timedelta(days=30)),
        ("12h", NOW + timedelta(hours=12)),
        ("2w", NOW + timedelta(weeks=2)),
        ("2026-12-31", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-07-01T10:00:00+02:00", datetime(2026, 7, 1, 8, tzinfo=UTC)),
    ],
)
def test_parse_expiry(text: str, expected: datetime | None) -> None:
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text", ["0d", "2026-05-31", "2026-07-01T10:00:00", "x", "-1d"])
def test_parse_expiry_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text)) + "|no time zone"):
        parse_expiry(text, NOW)


def test_parse_duration() -> None:
    assert parse_duration(" 90s ") == timedelta(seconds=90)
    with pytest.raises(ValueError, match="duration"):
        parse_duration("1y")
