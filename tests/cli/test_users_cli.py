from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli import app as root
from bastion.cli.users import app
from bastion.credentials._passwords import make_hasher
from bastion.keyring import generate_master_key_file
from bastion.store import migrate, open_store


def make_config(folder: Path, *, migrated: bool = True) -> Path:
    config = folder / "bastion.yaml"
    config.write_text("storage:\n  url: sqlite:///data/bastion.db\n", encoding="utf-8")
    generate_master_key_file(folder / "bastion.key")
    (folder / "data").mkdir()
    if migrated:
        asyncio.run(migrate(f"sqlite:///{folder / 'data' / 'bastion.db'}"))
    return config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_config(tmp_path)


runner = CliRunner()


def invoke(config: Path, *args: str, input: str | None = None):
    return runner.invoke(app, [*args, "--config", str(config)], input=input)


def stored_user(config: Path, name: str):
    async def get():
        async with open_store(config) as ctx:
            return await ctx.users.get_by_username(name)

    return asyncio.run(get())


def test_add_with_prompt_stores_an_argon2id_hash(config: Path) -> None:
    result = invoke(
        config, "add", "alice", "--roles", "ops,admin", input="s3cret pw horse\ns3cret pw horse\n"
    )
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.stdout
    user = stored_user(config, "alice")
    assert user.roles == ("admin", "ops")
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert make_hasher().verify(user.password_hash, "s3cret pw horse")


def test_prompt_confirmation_mismatch_stores_nothing(config: Path) -> None:
    one, two = "one passphrase", "two passphrase"
    result = invoke(config, "add", "alice", input=f"{one}\n{two}\n{one}\n{one}\n")
    assert result.exit_code == 0  # typer asks again until both match
    assert make_hasher().verify(stored_user(config, "alice").password_hash, one)


def test_password_stdin_and_passwd(config: Path) -> None:
    assert (
        invoke(config, "add", "bob", "--password-stdin", input="first passphrase\n").exit_code == 0
    )
    result = invoke(config, "passwd", "bob", "--password-stdin", input="second passphrase\r\n")
    assert result.exit_code == 0, result.output
    assert make_hasher().verify(stored_user(config, "bob").password_hash, "second passphrase")


def test_disable_enable_roles_and_list(config: Path) -> None:
    invoke(config, "add", "carol", "--password-stdin", input="a fine passphrase\n")
    assert invoke(config, "disable", "carol").exit_code == 0
    assert stored_user(config, "carol").disabled is True
    listing = invoke(config, "list")
    assert "carol" in listing.stdout
    assert "disabled" in listing.stdout
    assert "argon2" not in listing.stdout
    assert invoke(config, "enable", "carol").exit_code == 0
    assert stored_user(config, "carol").disabled is False
    assert invoke(config, "roles", "carol", "a,b").exit_code == 0
    assert stored_user(config, "carol").roles == ("a", "b")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["add", "bad:name", "--password-stdin"], "pw\n", "must not contain ':'"),
        (["add", "ok", "--password-stdin"], "\n", "password is empty"),
        (["add", "ok", "--password-stdin"], "x" * 1025 + "\n", "longer than 1024 bytes"),
        (["disable", "ghost"], None, "no user 'ghost'"),
        (["passwd", "ghost", "--password-stdin"], "a fine passphrase\n", "no user 'ghost'"),
        (
            ["add", "ok", "--password-stdin", "--roles", "viewer admin"],
            "a fine passphrase\n",
            "role 'viewer admin'",
        ),
    ],
)
def test_bad_input_is_one_line_exit_1(
    config: Path, args: list[str], stdin: str | None, message: str
) -> None:
    result = invoke(config, *args, input=stdin)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_duplicate_user(config: Path) -> None:
    invoke(config, "add", "dan", "--password-stdin", input="a fine passphrase\n")
    result = invoke(config, "add", "dan", "--password-stdin", input="a fine passphrase\n")
    assert result.exit_code == 1
    assert "already exists" in result.stderr


def test_missing_config_exits_2(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nope.yaml", "list")
    assert result.exit_code == 2
    assert "no such file" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_bad_config_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bastion.yaml").write_text("storage: [1, 2\n", encoding="utf-8")
    result = invoke(tmp_path / "bastion.yaml", "list")
    assert result.exit_code == 2
    assert "bastion.yaml" in result.stderr


def test_missing_key_file_exits_2(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (tmp_path / "bastion.key").unlink()
    result = invoke(config, "list")
    assert result.exit_code == 2
    assert "master key file not found" in result.stderr


def test_missing_database_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path, migrated=False)
    result = invoke(config, "list")
    assert result.exit_code == 2
    assert "bastion init" in result.stderr
    assert not (tmp_path / "data" / "bastion.db").exists()


def test_unmigrated_database_exits_2(tmp_path: Path) -> None:
    config = make_config(tmp_path, migrated=False)
    (tmp_path / "data" / "bastion.db").touch()
    result = invoke(config, "list")
    assert result.exit_code == 2
    assert "schema is at nothing" in result.stderr


def test_unreachable_postgres_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bastion.yaml").write_text(
        "storage:\n  url: postgresql://u:hunter2@127.0.0.1:1/x\n", encoding="utf-8"
    )
    generate_master_key_file(tmp_path / "bastion.key")
    result = invoke(tmp_path / "bastion.yaml", "list")
    assert result.exit_code == 2
    assert "cannot connect" in result.stderr
    assert "hunter2" not in result.stderr


def test_config_from_environment(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_CONFIG", str(config))
    result = runner.invoke(
        root, ["users", "add", "eve", "--password-stdin"], input="a fine passphrase\n"
    )
    assert result.exit_code == 0, result.output
    assert stored_user(config, "eve") is not None


@pytest.mark.parametrize(
    ("password", "problem"),
    [("password123!", "too common"), ("short pw", "at least 12"),
     ("my name is alice!", "username")],
)  # fmt: skip
def test_the_password_policy_applies(config: Path, password: str, problem: str) -> None:
    result = invoke(config, "add", "alice", "--password-stdin", input=f"{password}\n")
    assert result.exit_code == 1
    assert problem in result.stderr


def test_reset_mfa_removes_factors_and_sessions(config: Path) -> None:
    from bastion.identity import IdentityStore
    from bastion.store import run_with_store

    assert (
        invoke(config, "add", "fay", "--password-stdin", input="a fine passphrase\n").exit_code == 0
    )

    async def enrol(ctx: Any) -> None:
        store = IdentityStore(ctx.engine, ctx.keyring)
        await store.start_totp("fay", "JBSWY3DPEHPK3PXP")
        await store.use_totp_step("fay", 1, confirm=True)
        await store.new_recovery_codes("fay")

    run_with_store(config, enrol)
    listed = invoke(config, "list")
    assert "totp" in listed.stdout
    assert "JBSWY3DP" not in listed.stdout
    result = invoke(config, "reset-mfa", "fay")
    assert result.exit_code == 0, result.stderr
    assert "second factors of fay removed" in result.stderr

    async def factors(ctx: Any) -> Any:
        return await IdentityStore(ctx.engine, ctx.keyring).factors("fay")

    assert not run_with_store(config, factors).any
    assert invoke(config, "reset-mfa", "ghost").exit_code == 1
