"""``bastion init`` and ``bastion config check``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bastion.cli._common import DEFAULT_CONFIG, ConfigPath, fail, out, run
from bastion.errors import BastionError

if TYPE_CHECKING:
    from bastion.config import Config

config_app = typer.Typer(no_args_is_help=True)


def starter_config() -> str:
    return resources.files("bastion").joinpath("starter.yaml").read_text(encoding="utf-8")


async def prepare_storage(config: Config) -> None:
    """Create or upgrade the database and make sure the signing keys exist."""
    from bastion.keyring import load_keyring
    from bastion.oauth.keys import ensure_oauth_keys
    from bastion.store.migrate import migrate
    from bastion.tokens.keys import ensure_signing_key

    await migrate(config.database_url)
    keyring = load_keyring(config.resolve(config.secrets.master_key_file))
    await ensure_signing_key(config.database_url, keyring)
    if config.oauth.enabled:
        await ensure_oauth_keys(config.database_url, keyring)


def _folder(folder: Path, holds: str, create: bool, mode: int = 0o777) -> None:
    """Make sure ``folder`` exists: created only when asked (a typo in a path must not
    silently become a new directory tree)."""
    if folder.is_dir():
        return
    if folder.exists():
        fail(f"{folder} (for {holds}) is not a directory")
    if not create:
        fail(f"{folder} (for {holds}) does not exist: create it, or pass --create-dirs")
    folder.mkdir(parents=True, mode=mode)
    out.print(f"created {folder}")


def _sqlite_folder(config: Config) -> Path | None:
    url = config.database_url
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0]).parent


CreateDirs = Annotated[
    bool,
    typer.Option(
        "--create-dirs",
        help="Create missing folders for the config, the master key and a SQLite "
        "database (without it a missing folder is refused).",
    ),
]


def init(
    config: ConfigPath = DEFAULT_CONFIG,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing bastion.yaml.")
    ] = False,
    create_dirs: CreateDirs = False,
) -> None:
    """Write a commented starter bastion.yaml and a master key, and create the database."""
    from bastion.config import load_config
    from bastion.keyring import generate_master_key_file

    if config.exists() and not force:
        out.print(f"{config} exists; keeping it (use --force to overwrite).")
    else:
        _folder(config.parent, config.name, create_dirs)
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
        _folder(key_file.parent, "the master key", create_dirs, mode=0o700)
        generate_master_key_file(key_file)
        out.print(f"wrote {key_file} (mode 0600) - back it up and keep it secret")
    database_folder = _sqlite_folder(loaded)
    if database_folder is not None:
        _folder(database_folder, "the SQLite database", create_dirs)
    run(prepare_storage(loaded))
    out.print(f"database ready: {loaded.storage.url}")
    out.print(
        "next: [bold]bastion users add NAME[/] or [bold]bastion keys create[/], then "
        "[bold]bastion serve[/]"
    )


@config_app.command("check")
def check(config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Validate a bastion.yaml and start the gateway from it once, as `bastion serve`
    does (master key, database, keys); then show what it configures."""
    from rich.table import Table

    from bastion.cli.serve import checked_config

    loaded, _text = checked_config(config)
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
