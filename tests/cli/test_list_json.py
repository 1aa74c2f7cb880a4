"""``--json`` on the list commands: one array on standard output, in the shape
docs/deployment.md#scripting documents, never a secret in it (a script could not get a
key id from the tables)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.oauth.keys import ensure_oauth_keys
from bastion.store import open_store
from tests.cli.test_users_cli import make_config

runner = CliRunner()
PASSWORD = "a fine passphrase"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")  # RFC 3339, UTC

# The documented shapes: a field may be added, none renamed or removed.
USER = {"username", "roles", "disabled", "mfa", "created_at", "updated_at"}
KEY = {"key_id", "name", "subject", "scopes", "roles", "status", "replaced_by"}
KEY |= {"created_at", "expires_at", "last_used_at", "revoked_at"}
CLIENT = {"client_id", "client_name", "token_endpoint_auth_method", "redirect_uris"}
CLIENT |= {"post_logout_redirect_uris", "grant_types", "scope", "jwks", "access_token_format"}
CLIENT |= {"require_pushed_authorization_requests", "access_token_ttl", "refresh_token_ttl"}
CLIENT |= {"id_token_signed_response_alg", "may_introspect", "skip_consent"}
SIGNING_KEY = {"kid", "alg", "state", "active_from", "retire_after"}


def _run(config: Path, *args: str, stdin: str | None = None) -> str:
    result = runner.invoke(app, [*args, "--config", str(config)], input=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A store with a user, API keys (one rotated, one revoked), a confidential client
    and the authorization server's keys; and every secret the commands printed."""
    config = make_config(tmp_path_factory.mktemp("json"))
    _run(config, "users", "add", "alice", "--roles", "admin", "--password-stdin", stdin=PASSWORD)
    first = _run(config, "keys", "create", "--name", "ci", "--subject", "svc", "--scopes", "a,b")
    second = _run(config, "keys", "create", "--name", "old", "--subject", "svc")
    secret = _run(config, "clients", "create", "--name", "svc", "--client-id", "svc")

    async def oauth_keys() -> None:
        async with open_store(config) as ctx:
            await ensure_oauth_keys(ctx.config.database_url, ctx.keyring)

    asyncio.run(oauth_keys())
    listed = json.loads(_run(config, "keys", "list", "--json"))
    by_name = {k["name"]: k["key_id"] for k in listed}
    rotated = _run(config, "keys", "rotate", by_name["ci"])
    _run(config, "keys", "revoke", by_name["old"])
    return config, [PASSWORD, first.strip(), second.strip(), secret.strip(), rotated.strip()]


def _listed(config: Path, *command: str) -> list[dict[str, Any]]:
    rows = json.loads(_run(config, *command, "list", "--json"))
    assert isinstance(rows, list)
    return rows


def test_users_list_json(filled: tuple[Path, list[str]]) -> None:
    [user] = _listed(filled[0], "users")
    assert set(user) == USER
    assert user["username"] == "alice"
    assert user["roles"] == ["admin"]
    assert user["disabled"] is False
    assert user["mfa"] == {"totp": False, "passkeys": 0, "recovery_codes": 0}
    assert TIME.match(user["created_at"])


def test_keys_list_json_gives_a_script_the_key_ids(filled: tuple[Path, list[str]]) -> None:
    config, _secrets = filled
    keys = _listed(config, "keys")
    assert all(set(k) == KEY for k in keys)
    assert sorted(k["status"] for k in keys) == ["active", "revoked", "rotating"]
    assert [k["status"] for k in keys if k["name"] == "old"] == ["revoked"]
    rotating = next(k for k in keys if k["status"] == "rotating")
    assert rotating["scopes"] == ["a", "b"]
    assert rotating["replaced_by"] in {k["key_id"] for k in keys}
    assert all(TIME.match(k["created_at"]) and TIME.match(k["expires_at"]) for k in keys)
    # the id a script reads revokes the key
    _run(config, "keys", "revoke", rotating["replaced_by"])


def test_clients_and_jwks_list_json(filled: tuple[Path, list[str]]) -> None:
    config, _secrets = filled
    [client] = _listed(config, "clients")
    assert set(client) == CLIENT
    assert client["client_id"] == "svc"
    assert client["token_endpoint_auth_method"] == "client_secret_basic"
    keys = _listed(config, "jwks")
    assert all(set(k) == SIGNING_KEY for k in keys)
    assert {k["state"] for k in keys} == {"active"}
    assert {k["alg"] for k in keys} >= {"RS256", "ES256"}


@pytest.mark.parametrize("command", ["users", "keys", "clients", "jwks"])
def test_no_secret_in_any_json_listing(filled: tuple[Path, list[str]], command: str) -> None:
    config, secrets = filled
    text = _run(config, command, "list", "--json")
    for secret in secrets:
        assert secret not in text
    for marker in ("$argon2", "hash", '"d":', "private", 'secret"'):
        assert marker not in text
