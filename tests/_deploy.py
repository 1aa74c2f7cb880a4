"""A real bastion deployment in a temp folder for tests: config, master key, migrated
SQLite (or PostgreSQL) database, users, API keys and a JWT issuer whose tokens it trusts."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from joserfc.jwk import ECKey

from bastion.cli.config_cmd import prepare_storage
from bastion.config import Config, load_config
from bastion.credentials._passwords import hash_password
from bastion.credentials.apikey import ApiKeys
from bastion.keyring import generate_master_key_file
from bastion.store import open_store
from bastion.tokens.mint import mint_jwt

ISSUER = "https://issuer.test"
AUDIENCE = "orders-api"
PASSWORD = "correct horse battery staple"


def base_config(upstream: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 8080},
        "storage": {"url": "sqlite:///bastion.db"},
        "routes": [
            {"name": "public", "path_prefix": "/public", "upstream": upstream, "public": True},
            {
                "name": "admin",
                "path_prefix": "/api/admin",
                "upstream": upstream,
                "auth": ["jwt", "api_key", "basic"],
                "roles": ["admin"],
            },
            {
                "name": "reports",
                "path_prefix": "/api/reports",
                "upstream": upstream,
                "auth": ["jwt", "api_key"],
                "scopes": ["reports:read"],
            },
            {
                "name": "api",
                "path_prefix": "/api",
                "upstream": upstream,
                "auth": ["jwt", "api_key", "basic"],
                "assertion": True,
            },
        ],
        "audit": {"path": "audit.log"},
        "rate_limits": {"per_ip": "100000/minute", "per_principal": "100000/minute"},
    }
    config.update(overrides)
    return config


@dataclass
class Deployment:
    folder: Path
    config_file: Path
    config: Config
    issuer_key: ECKey
    api_key: str = ""
    admin_key: str = ""
    reports_key: str = ""
    secrets_used: list[str] = field(default_factory=list)

    def jwt(self, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "scope": "read",
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_urlsafe(8),
        }
        body.update(claims)
        token = mint_jwt(self.issuer_key, body, alg="ES256", kid=self.issuer_key.kid)
        self.secrets_used.append(token)
        return token

    @property
    def audit_log(self) -> Path:
        return self.folder / "audit.log"


async def make_deployment(
    folder: Path, upstream: str, *, storage_url: str | None = None, **overrides: Any
) -> Deployment:
    folder.mkdir(parents=True, exist_ok=True)
    issuer_key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    public = issuer_key.as_dict(private=False)
    data = base_config(upstream, **overrides)
    data.setdefault(
        "issuers",
        [
            {
                "name": "test",
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "keys": [public],
                "algorithms": ["ES256"],
            }
        ],
    )
    if storage_url:
        data["storage"] = {"url": storage_url}
    config_file = folder / "bastion.yaml"
    config_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    generate_master_key_file(folder / "bastion.key")
    config = load_config(config_file)
    await prepare_storage(config)
    deployment = Deployment(folder, config_file, config, issuer_key)
    async with open_store(config) as ctx:
        await ctx.users.add("alice", hash_password(PASSWORD), roles=["user"])
        await ctx.users.add("root", hash_password(PASSWORD), roles=["admin"])
        keys = ApiKeys.from_keyring(ctx.api_keys, ctx.keyring, config.api_keys)
        deployment.api_key = (await keys.issue(name="t", subject="alice", scopes=["read"])).key
        deployment.admin_key = (await keys.issue(name="a", subject="root", roles=["admin"])).key
        deployment.reports_key = (
            await keys.issue(name="r", subject="carol", scopes=["reports:read"])
        ).key
        await keys.aclose()
    deployment.secrets_used += [
        PASSWORD,
        deployment.api_key,
        deployment.admin_key,
        deployment.reports_key,
    ]
    return deployment


async def revoke_keys(d: Deployment, subject: str | None = None) -> None:
    """Revoke every API key of ``d`` (of ``subject`` only, if given), as the CLI would."""
    async with open_store(d.config) as ctx:
        keys = ApiKeys.from_keyring(ctx.api_keys, ctx.keyring, d.config.api_keys)
        for record in await ctx.api_keys.list(subject=subject):
            await keys.revoke(record.key_id)
        await keys.aclose()
