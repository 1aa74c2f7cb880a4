"""bastion init / config check / serve: bad config fails with file, field and reason."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bastion.cli import app
from bastion.config import parse_config

runner = CliRunner()


def test_init_writes_config_key_and_database(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    result = runner.invoke(app, ["init", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert config.exists()
    key = tmp_path / "bastion.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "bastion.db").exists()
    # the starter config is valid and commented
    assert "#" in config.read_text()
    check = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert check.exit_code == 0, check.output
    assert "config OK" in check.output
    # a second init keeps the key and the config
    before = key.read_text()
    again = runner.invoke(app, ["init", "--config", str(config)])
    assert again.exit_code == 0
    assert key.read_text() == before


def test_config_check_names_file_field_and_problem(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": {"port": 70000},
                "routes": [{"name": "r", "auth": ["kerberos"]}],
                "rate_limits": {"per_ip": "lots"},
            }
        )
    )
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2
    out = result.output
    assert str(config) in out
    assert "listen.port" in out
    assert "routes.0.auth.0" in out
    assert "rate_limits.per_ip" in out
    assert "Traceback" not in out


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("routes:\n  - name: [unclosed\n")
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2
    assert "line" in result.output
    assert "Traceback" not in result.output


def test_missing_config_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "check", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("listen:\n  hots: 0.0.0.0\n")
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2
    assert "listen.hots" in result.output


def test_serve_with_missing_database_fails_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    assert runner.invoke(app, ["init", "--config", str(config)]).exit_code == 0
    (tmp_path / "bastion.db").unlink()
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2
    assert "bastion init" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_serve_with_bad_master_key_fails_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    assert runner.invoke(app, ["init", "--config", str(config)]).exit_code == 0
    (tmp_path / "bastion.key").write_text("too-short\n")
    result = runner.invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert "master key" in result.output


@pytest.mark.parametrize("namespace", ["", "a*", "a:b", "tenant one", "x" * 65, "ä"])
def test_a_redis_namespace_that_could_match_or_nest_in_anothers_is_refused(
    tmp_path: Path, namespace: str
) -> None:
    # Every Redis key starts "<namespace>:"; a glob character or a ':' in it could make
    # one deployment's key pattern (SCAN MATCH on reset) cover another's keys.
    config = tmp_path / "bastion.yaml"
    config.write_text(yaml.safe_dump({"redis_namespace": namespace}))
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2
    assert "redis_namespace" in result.output
    # (config check also wants the key and database serve would: the parse alone here)
    assert parse_config({"redis_namespace": "acme-prod.eu_1"}).redis_namespace == "acme-prod.eu_1"


def test_websocket_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    route = {"name": "live", "path_prefix": "/live", "auth": ["api_key"], "websocket": True}
    config.write_text(
        yaml.safe_dump(
            {
                "routes": [
                    {**route, "methods": ["POST"]},
                    {**route, "name": "o", "websocket_origins": ["https://a.test/path"]},
                    {**route, "name": "n", "websocket": False, "websocket_origins": []},
                ],
                "websockets": {"recheck_seconds": 0, "max_message_bytes": 10},
            }
        )
    )
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "must allow GET" in out
    assert "not an origin (scheme://host[:port]): https://a.test/path" in out
    assert "websocket_origins needs websocket: true" in out
    assert "websockets.recheck_seconds" in out
    assert "websockets.max_message_bytes" in out
    origins = ["https://App.Example.com", "http://[::1]:8080"]
    config.write_text(yaml.safe_dump({"routes": [{**route, "websocket_origins": origins}]}))
    assert runner.invoke(app, ["init", "--config", str(config)]).exit_code == 0
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "+websocket" in result.output  # the routes table says which routes accept them


def test_uvicorn_without_wsproto_is_refused_for_websocket_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bastion.yaml"
    assert runner.invoke(app, ["init", "--config", str(config)]).exit_code == 0
    data = yaml.safe_load(config.read_text())
    data["routes"][-1]["websocket"] = True  # a proxied route (the starter's api)
    config.write_text(yaml.safe_dump(data))
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "wsproto" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    def execv(*args: object) -> None:  # were the check missing: never become the server
        raise SystemExit(99)

    monkeypatch.setattr(os, "execv", execv)
    result = runner.invoke(app, ["serve", "--config", str(config), "--server", "uvicorn"])
    assert result.exit_code == 2
    assert "pip install wsproto" in " ".join(result.output.split())


def test_a_config_too_large_to_hand_to_the_workers_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers get the checked text in their environment, where one string may hold
    # 128 KiB on Linux: a larger config would fail there, after start-up.
    config = tmp_path / "bastion.yaml"
    assert runner.invoke(app, ["init", "--config", str(config)]).exit_code == 0
    config.write_text(config.read_text() + "#" + "x" * (121 * 1024) + "\n")

    def execv(*args: object) -> None:  # were the check missing: never become the server
        raise SystemExit(99)

    monkeypatch.setattr(os, "execv", execv)
    result = runner.invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert "larger than 120 KiB" in " ".join(result.output.split())


def _check(config: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    return result.exit_code, " ".join(result.output.split())


def test_config_check_fails_as_serve_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # It said "config OK" for a config whose master key file was missing or empty, and
    # `bastion serve` then failed: it now builds the gateway once, as serve does.
    monkeypatch.delenv("BASTION_MASTER_KEY", raising=False)
    config = tmp_path / "bastion.yaml"
    assert runner.invoke(app, ["init", "--config", str(config)]).exit_code == 0
    key = tmp_path / "bastion.key"
    good = key.read_text()
    key.unlink()
    code, out = _check(config)
    assert code == 2
    assert f"{key}: master key file not found (run 'bastion init'" in out
    assert "config OK" not in out
    key.write_text("")
    code, out = _check(config)
    assert code == 2
    assert "master key must be 32 bytes, base64url-encoded" in out
    key.write_text(good)
    (tmp_path / "bastion.db").unlink()
    code, out = _check(config)
    assert code == 2
    assert "bastion.db: no such file (run 'bastion init' first)" in out
    assert not (tmp_path / "bastion.db").exists()  # the check did not create it empty
    assert runner.invoke(app, ["init", "--config", str(config)]).exit_code == 0
    code, out = _check(config)
    assert code == 0, out
    assert "config OK" in out


def test_init_refuses_a_missing_folder_unless_asked(tmp_path: Path) -> None:
    # It created /new/dir silently: a typo in a path became a directory tree.
    config = tmp_path / "new" / "dir" / "bastion.yaml"
    refused = runner.invoke(app, ["init", "--config", str(config)])
    assert refused.exit_code == 2
    message = " ".join(refused.output.split())
    assert (
        f"{config.parent} (for bastion.yaml) does not exist: create it, or pass --create-dirs"
        in message
    )
    assert not (tmp_path / "new").exists()
    made = runner.invoke(app, ["init", "--config", str(config), "--create-dirs"])
    assert made.exit_code == 0, made.output
    assert f"created {config.parent}" in " ".join(made.output.split())
    assert (config.parent / "bastion.key").exists()


@pytest.mark.parametrize(
    ("setting", "folder", "holds"),
    [
        ("secrets:\n  master_key_file: keys/bastion.key\n", "keys", "the master key"),
        ("storage:\n  url: sqlite:///data/bastion.db\n", "data", "the SQLite database"),
    ],
)
def test_init_refuses_a_missing_folder_the_config_names(
    tmp_path: Path, setting: str, folder: str, holds: str
) -> None:
    # The key file's folder missing ended in a traceback; the database's in a driver error.
    config = tmp_path / "bastion.yaml"
    config.write_text(setting)
    refused = runner.invoke(app, ["init", "--config", str(config)])
    assert refused.exit_code == 2
    message = " ".join(refused.output.split())
    assert f"{tmp_path / folder} (for {holds}) does not exist" in message
    assert "Traceback" not in message
    made = runner.invoke(app, ["init", "--config", str(config), "--create-dirs"])
    assert made.exit_code == 0, made.output
    assert (tmp_path / folder).is_dir()
    if folder == "keys":
        assert (tmp_path / folder).stat().st_mode & 0o777 == 0o700
