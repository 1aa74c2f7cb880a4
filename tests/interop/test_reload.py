"""``kill -HUP`` to a running ``bastion serve``: granian respawns its workers, and
bastion first checks the configuration they would start from. A good one is served
(a moved route), a bad one is refused with its reason while the previous configuration
goes on being served (before, every worker exited on it and the server stopped, with a
traceback). uvicorn does not reload: SIGHUP, which ended it, is ignored
with a warning. A worker that dies is started again (it stopped the server)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests._deploy import Deployment, make_deployment
from tests._polling import until
from tests._procs import BASTION, running
from tests._services import free_port


def deployment(tmp_path: Path, port: int, *, proxied: bool = False) -> Deployment:
    routes: list[dict[str, object]] = [{"name": "api", "path_prefix": "/api", "auth": ["api_key"]}]
    if proxied:  # granian then serves ASGI (lifespan) instead of RSGI
        routes.append({"name": "up", "path_prefix": "/up", "upstream": "http://127.0.0.1:9"})
        routes[-1]["public"] = True
    listen = {"host": "127.0.0.1", "port": port}
    return asyncio.run(
        make_deployment(tmp_path / "d", "http://127.0.0.1:9", listen=listen, routes=routes)
    )


@contextmanager
def serving(d: Deployment, port: int, server: str) -> Iterator[int]:
    cmd = [*BASTION, "serve", "--config", str(d.config_file), "--server", server]
    with running(cmd, port, log=d.folder / "serve.log") as proc:
        yield proc.pid


def decide(d: Deployment, port: int, path: str) -> int:
    headers = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": path, "X-API-Key": d.api_key}
    url = f"http://127.0.0.1:{port}/_bastion/auth"
    return httpx.get(url, headers=headers, timeout=5).status_code


def up(d: Deployment, port: int) -> bool:
    try:
        return decide(d, port, "/api/x") == 200
    except httpx.HTTPError:
        return False


def write(d: Deployment, data: dict[str, object]) -> None:
    d.config_file.write_text(yaml.safe_dump(data))


def log_of(d: Deployment) -> str:
    return " ".join((d.folder / "serve.log").read_text().split())


def test_granian_reloads_a_good_configuration_and_refuses_a_bad_one(tmp_path: Path) -> None:
    port = free_port()
    d = deployment(tmp_path, port)
    with serving(d, port, "granian") as pid:
        assert decide(d, port, "/api/x") == 200
        data = yaml.safe_load(d.config_file.read_text())
        data["routes"][0]["path_prefix"] = "/v2"
        write(d, data)
        os.kill(pid, signal.SIGHUP)
        assert until(lambda: decide(d, port, "/v2/x") == 200)
        # granian stops the old worker a few seconds after the new one started.
        assert until(lambda: decide(d, port, "/api/x") == 404)
        # A bad configuration: refused, said why, and the previous one still served.
        write(d, {**data, "routes": [{"name": "api", "path_prefix": "/api"}]})
        os.kill(pid, signal.SIGHUP)
        assert until(lambda: "reload refused" in log_of(d))
        assert "a route must list auth methods" in log_of(d)
        # A configuration whose storage cannot be opened is refused the same way: one
        # that is not there, and one that is there but no database (a folder).
        write(d, {**data, "storage": {"url": "sqlite:///missing/bastion.db"}})
        os.kill(pid, signal.SIGHUP)
        assert until(lambda: log_of(d).count("reload refused") == 2)
        assert "missing/bastion.db: no such file (run 'bastion init' first)" in log_of(d)
        (d.folder / "folder.db").mkdir()
        write(d, {**data, "storage": {"url": "sqlite:///folder.db"}})
        os.kill(pid, signal.SIGHUP)
        assert until(lambda: log_of(d).count("reload refused") == 3)
        # Said why: before, a thread of the check's database driver often printed a
        # traceback after the reason, and the refusal showed its last lines instead.
        assert "folder.db: cannot connect (OperationalError)" in log_of(d)
        for _ in range(20):  # the workers were never replaced: every answer is the old one
            assert decide(d, port, "/v2/x") == 200
    log = log_of(d)
    assert "Traceback" not in log
    assert log.count("reloading") == 1


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")
def test_uvicorn_survives_sighup_and_says_it_does_not_reload(tmp_path: Path) -> None:
    port = free_port()
    d = deployment(tmp_path, port)
    with serving(d, port, "uvicorn") as pid:
        d.config_file.write_text(d.config_file.read_text().replace("/api", "/v2"))
        os.kill(pid, signal.SIGHUP)
        assert until(lambda: "SIGHUP ignored" in log_of(d))
        assert decide(d, port, "/api/x") == 200  # still running, on what it started with


def test_a_worker_that_dies_is_started_again(tmp_path: Path) -> None:
    # The OOM killer or a crash took a worker, and granian then stopped the whole server.
    port = free_port()
    d = deployment(tmp_path, port)
    with serving(d, port, "granian") as pid:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1
        os.kill(int(children[0]), signal.SIGKILL)
        assert until(lambda: "Unexpected exit from worker" in log_of(d))
        assert until(lambda: up(d, port))
        assert decide(d, port, "/api/x") == 200
        assert Path(f"/proc/{pid}/task/{pid}/children").read_text().split() != children


def _workers(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("proxied", [False, True], ids=["rsgi", "asgi"])
def test_workers_stopped_by_a_reload_and_at_shutdown_leave_no_traceback(
    tmp_path: Path, proxied: bool
) -> None:
    # A worker that stops closes its database connections before its event loop ends
    # (a driver thread posting to a closed loop printed a traceback). The old worker is
    # stopped once the new one serves; then the server stops.
    port = free_port()
    d = deployment(tmp_path, port, proxied=proxied)
    with serving(d, port, "granian") as pid:
        assert decide(d, port, "/api/x") == 200  # the worker has used its database
        [old] = _workers(pid)
        os.kill(pid, signal.SIGHUP)
        assert until(lambda: _workers(pid) not in ([], [old]) and len(_workers(pid)) == 1)
        assert decide(d, port, "/api/x") == 200
    log = log_of(d)
    assert "reloading" in log
    assert "Traceback" not in log
    assert "Event loop is closed" not in log
