"""``bastion demo``: the quickstart. A gateway on the embedded default (SQLite file,
in-process state) in front of a small echo API, with one credential of each kind."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli._common import fail, out, run
from bastion.cli.config_cmd import prepare_storage
from bastion.cli.serve import Server, load_checked, run_server

if TYPE_CHECKING:
    from bastion.config import Config

DEMO_ISSUER = "https://issuer.bastion-demo.test"
DEMO_AUDIENCE = "demo-api"


def demo_config(port: int, upstream_port: int, issuer_jwk: dict[str, Any]) -> dict[str, Any]:
    upstream = f"http://127.0.0.1:{upstream_port}"
    return {
        "listen": {"host": "127.0.0.1", "port": port},
        "storage": {"url": "sqlite:///bastion.db"},
        "issuers": [
            {
                "name": "demo",
                "issuer": DEMO_ISSUER,
                "audiences": [DEMO_AUDIENCE],
                "keys": [issuer_jwk],
                "algorithms": ["ES256"],
            }
        ],
        "routes": [
            {"name": "public", "path_prefix": "/public", "upstream": upstream, "public": True},
            {
                "name": "reports",
                "path_prefix": "/api/reports",
                "upstream": upstream,
                "auth": ["jwt", "api_key"],
                "scopes": ["reports:read"],
            },
            {
                "name": "admin",
                "path_prefix": "/api/admin",
                "upstream": upstream,
                "auth": ["jwt", "api_key", "basic"],
                "roles": ["admin"],
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
        "rate_limits": {"per_ip": "600/minute", "per_principal": "300/minute"},
    }


def _write_config(folder: Path, port: int, upstream_port: int) -> Path:
    import yaml
    from joserfc.jwk import ECKey

    config_file = folder / "bastion.yaml"
    issuer_file = folder / "demo-issuer.jwk.json"
    if not issuer_file.exists():
        key = ECKey.generate_key("P-256", private=True, auto_kid=True)
        issuer_file.write_text(yaml.safe_dump(key.as_dict(private=True)), encoding="utf-8")
        issuer_file.chmod(0o600)
    private = yaml.safe_load(issuer_file.read_text(encoding="utf-8"))
    public = {k: v for k, v in private.items() if k != "d"}
    data = demo_config(port, upstream_port, public)
    header = "# bastion demo config, written by `bastion demo` (see docs/config.md)\n"
    config_file.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return config_file


async def _credentials(config: Config, folder: Path) -> dict[str, str]:
    import yaml

    from bastion.credentials._passwords import hash_password
    from bastion.credentials.apikey import ApiKeys
    from bastion.store import RecordExists, open_store
    from bastion.tokens.mint import mint_jwt

    await prepare_storage(config)
    password = secrets.token_urlsafe(12)
    async with open_store(config) as ctx:
        try:
            await ctx.users.add("alice", hash_password(password), roles=["user"])
        except RecordExists:
            await ctx.users.set_password("alice", hash_password(password))
        keys = ApiKeys.from_keyring(ctx.api_keys, ctx.keyring, config.api_keys)
        issued = await keys.issue(name="demo", subject="alice", scopes=["read"], roles=["user"])
        await keys.aclose()
    private = yaml.safe_load((folder / "demo-issuer.jwk.json").read_text(encoding="utf-8"))
    now = int(time.time())
    claims = {
        "iss": DEMO_ISSUER,
        "aud": DEMO_AUDIENCE,
        "sub": "alice",
        "scope": "read",
        "iat": now,
        "exp": now + 3600,
        "jti": secrets.token_urlsafe(8),
    }
    token = mint_jwt(private, claims, alg="ES256", kid=private.get("kid"))
    return {"password": password, "api_key": issued.key, "jwt": token}


def _print_guide(base: str, creds: dict[str, str], folder: Path) -> None:
    key, jwt, pw = creds["api_key"], creds["jwt"], creds["password"]
    lines = [
        ("anonymous, public route (200)", f"curl -i {base}/public/hello"),
        ("no credential (401 + WWW-Authenticate)", f"curl -i {base}/api/hello"),
        ("HTTP Basic (200)", f"curl -i -u alice:{pw} {base}/api/hello"),
        ("API key (200)", f"curl -i -H 'X-API-Key: {key}' {base}/api/hello"),
        ("JWT bearer, ES256 (200)", f"curl -i -H 'Authorization: Bearer {jwt}' {base}/api/hello"),
        ("wrong password (401)", f"curl -i -u alice:wrong {base}/api/hello"),
        ("missing scope (403)", f"curl -i -H 'X-API-Key: {key}' {base}/api/reports/q3"),
        ("missing role (403)", f"curl -i -u alice:{pw} {base}/api/admin/users"),
        ("key in the URL (refused, 401)", f"curl -i '{base}/api/hello?api_key={key}'"),
        (
            "forward-auth, as nginx asks it (200 + X-Bastion-* headers)",
            f"curl -i -H 'X-Original-Method: GET' -H 'X-Original-URI: /api/hello' "
            f"-H 'X-API-Key: {key}' {base}/_bastion/auth",
        ),
        ("metrics (loopback only)", f"curl -s {base}/metrics | grep bastion_decisions"),
    ]
    out.print(f"\n[bold]bastion demo[/] - files in {folder} (audit log: audit.log)\n")
    for title, command in lines:
        out.print(f"[dim]# {title}[/]")
        out.print(command, highlight=False, soft_wrap=True)
    out.print()


def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Where the demo keeps its files.")] = Path(
        "bastion-demo"
    ),
    port: Annotated[int, typer.Option(help="Gateway port.")] = 8080,
    upstream_port: Annotated[int, typer.Option(help="Demo upstream port.")] = 9000,
    server: Annotated[Server, typer.Option(help="ASGI server.")] = Server.GRANIAN,
) -> None:
    """Start the gateway in front of a demo echo API and print a curl line per credential."""
    from bastion.config import load_config
    from bastion.keyring import generate_master_key_file

    folder.mkdir(parents=True, exist_ok=True)
    config_file = _write_config(folder, port, upstream_port)
    key_file = folder / "bastion.key"
    if not key_file.exists():
        generate_master_key_file(key_file)
    config = load_config(config_file)
    creds = run(_credentials(config, folder))
    upstream = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "bastion.demo", "--port", str(upstream_port)]
    )
    try:
        loaded = load_checked(config_file)
        _print_guide(f"http://127.0.0.1:{port}", creds, folder.resolve())
        run_server(config_file, loaded, server)
    except KeyboardInterrupt:
        pass
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    if upstream.returncode not in (0, -15):
        fail(f"the demo upstream exited with {upstream.returncode}")
