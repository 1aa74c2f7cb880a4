"""A second ``bastion serve`` on a port another process listens on is refused.

granian's workers listen with SO_REUSEPORT: a second server on the same port started as
well, printed its banner, and the kernel shared the connections between the two (the
same credentials got 200 from one and 401 from the other, at random). Now it exits 2
with the reason, under either server, unless ``--reuse-port`` asks to share the port.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bastion._server import port_problem
from tests._deploy import Deployment, make_deployment
from tests._polling import until
from tests._procs import BASTION, bastion_serve, running, stop
from tests._services import free_port

ROUTES = [{"name": "api", "path_prefix": "/api", "auth": ["api_key"]}]


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, int]]:
    """One real ``bastion serve`` (granian), for the module."""
    port = free_port()
    folder = tmp_path_factory.mktemp("port") / "d"
    listen = {"host": "127.0.0.1", "port": port}
    d = asyncio.run(make_deployment(folder, "http://127.0.0.1:9", listen=listen, routes=ROUTES))
    with bastion_serve(d.config_file, port):
        yield d, port


def _decide(d: Deployment, port: int) -> int:
    headers = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/x", "X-API-Key": d.api_key}
    return httpx.get(f"http://127.0.0.1:{port}/_bastion/auth", headers=headers).status_code


def _second(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a second ``bastion serve``; one that serves instead is stopped, workers too."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    cmd = [*BASTION, "serve", "--config", str(config), *args]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        stop(proc)
        out, err = proc.communicate()
    return subprocess.CompletedProcess(cmd, proc.returncode, out.decode(), err.decode())


def _listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:``port``, from /proc/net/tcp."""
    local = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == local and row.split()[3] == "0A")


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_a_second_serve_on_the_port_exits_2_and_the_first_still_answers(
    first: tuple[Deployment, int], server: str
) -> None:
    d, port = first
    second = _second(d.config_file, "--server", server)
    assert second.returncode == 2, second.stdout + second.stderr
    message = " ".join(second.stderr.split())
    assert f"error: 127.0.0.1:{port} is in use: another process listens there" in message
    assert "--reuse-port" in message
    assert "bastion gateway on" not in second.stdout  # no banner: it never served
    assert "Traceback" not in second.stderr
    assert [_decide(d, port) for _ in range(10)] == [200] * 10


def test_another_program_holding_the_port_is_refused_too(tmp_path: Path) -> None:
    # Not a bastion, and listening without SO_REUSEPORT; on a wildcard address as well
    # as on the same one.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_problem("127.0.0.1", port) is not None
        assert port_problem("0.0.0.0", port) is not None
        assert port_problem("localhost", port) is not None
    assert port_problem("127.0.0.1", port) is None


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/net/tcp")
def test_reuse_port_shares_the_port_on_purpose(first: tuple[Deployment, int]) -> None:
    d, port = first
    assert _listeners(port) == 1
    cmd = [*BASTION, "serve", "--config", str(d.config_file), "--reuse-port"]
    with running(cmd, port, log=d.folder / "second.log"):
        assert until(lambda: _listeners(port) == 2)
        assert _decide(d, port) == 200
    assert until(lambda: _listeners(port) == 1)


def test_reuse_port_is_granian_only(first: tuple[Deployment, int]) -> None:
    d, _port = first
    second = _second(d.config_file, "--server", "uvicorn", "--reuse-port")
    assert second.returncode == 2
    assert "--reuse-port needs granian" in " ".join(second.stderr.split())
