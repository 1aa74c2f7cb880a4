"""``bastion init`` and ``bastion config check``."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

import typer
from rich.table import Table

from bastion.cli._common import DEFAULT_CONFIG, ConfigPath, fail, out, run
from bastion.config import Config, load_config
from bastion.errors import BastionError
from bastion.keyring import generate_master_key_file, load_keyring

config_app = typer.Typer(no_args_is_help=True)


def starter_config() -> str:
    return resources.files("bastion").joinpath("starter.yaml").read_text(encoding="utf-8")


async def prepare_storage(config: Config) -> None:
    """Create or upgrade the database and make sure the signing keys exist."""
    from bastion.oauth.keys import ensure_oauth_keys
    from bastion.store.migrate import migrate
    from bastion.tokens.keys import ensure_signing_key

    await migrate(config.database_url)
    keyring = load_keyring(config.resolve(config.secrets.master_key_file))
    await ensure_signing_key(config.database_url, keyring)
    if config.oauth.enabled:
        await ensure_oauth_keys(config.database_url, keyring)


def init(
    config: ConfigPath = DEFAULT_CONFIG,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing bastion.yaml.")
    ] = False,
) -> None:
    """Write a commented starter bastion.yaml and a master key, and create the database."""
    if config.exists() and not force:
        out.print(f"{config} exists; keeping it (use --force to overwrite).")
    else:
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(starter_config(), encoding="utf-8")
        out.print(f"wrote {config}")
    try:
        loaded = load_config(config)
    except BastionError as exc:
        fail(str(exc))
    key_file = loaded.resolve(loaded.secrets.master_key_file)
    if key_file.exists():
        out.print(f"{key_file} exists; keeping it.")
    else:
        generate_master_key_file(key_file)
        out.print(f"wrote {key_file} (mode 0600) - back it up and keep it secret")
    run(prepare_storage(loaded))
    out.print(f"database ready: {loaded.storage.url}")
    out.print(
        "next: [bold]bastion users add NAME[/] or [bold]bastion keys create[/], then "
        "[bold]bastion serve[/]"
    )


@config_app.command("check")
def check(config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Validate a bastion.yaml and show what it configures."""
    try:
        loaded = load_config(config)
    except BastionError as exc:
        fail(str(exc))
    table = Table(title=f"{config}: routes (first match wins)")
    for column in ("route", "match", "upstream", "auth", "requires", "limit"):
        table.add_column(column)
    for r in loaded.routes:
        match = (r.host or "*") + r.path_prefix + (f" [{','.join(r.methods)}]" if r.methods else "")
        if r.websocket:
            match += " +websocket"
        auth = "public" if r.public else ", ".join(m.value for m in r.auth)
        needs = " ".join([*(f"scope:{s}" for s in r.scopes), *(f"role:{x}" for x in r.roles)])
        table.add_row(
            r.name, match, str(r.upstream or "-"), auth, needs or "-", r.rate_limit or "-"
        )
    out.print(table)
    issuers = ", ".join(i.name for i in loaded.issuers) or "none"
    out.print(
        f"issuers: {issuers}; storage: {loaded.storage.url}; "
        f"redis: {'yes' if loaded.redis_url else 'no'}"
    )
    out.print("[green]config OK[/]")
