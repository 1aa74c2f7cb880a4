"""Find, and if need be start, the real services the suite talks to (127.0.0.1 only)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("BASTION_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/15")


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(port: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        time.sleep(0.2)
    return False


def _start(cmd: list[str]) -> None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(cmd, check=False, capture_output=True, timeout=30)


def ensure_postgres() -> str:
    """The test database URL; starts the local cluster if it is installed but down."""
    if not port_open(5432):
        versions = (
            sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
        )
        if versions and shutil.which("pg_ctlcluster"):
            _start(
                ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "start"]
            )
        if not _wait(5432):
            _skip_or_fail("PostgreSQL is not running on 127.0.0.1:5432 and could not be started")
    return PG_URL


def ensure_redis() -> str:
    """The test Redis URL (db 15); starts redis-server if it is installed but down."""
    if not port_open(6379):
        if shutil.which("redis-server"):
            _start(
                [
                    "redis-server",
                    "--daemonize",
                    "yes",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    "6379",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]
            )
        if not _wait(6379):
            _skip_or_fail("Redis is not running on 127.0.0.1:6379 and could not be started")
    return REDIS_URL


def _skip_or_fail(reason: str) -> None:
    # In CI the services must be exercised: a missing one fails the run instead of skipping.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, to stop and start at
    will (an outage); never the machine's shared one on 6379, which other tests use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            _skip_or_fail("redis-server is not installed")
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        cmd = [server, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
               "--appendonly", "no", "--dir", str(self.folder)]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _wait(self.port):
            self.stop()
            raise RuntimeError(f"redis-server did not open port {self.port}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@contextlib.contextmanager
def private_redis(folder: Path) -> Iterator[PrivateRedis]:
    """A started :class:`PrivateRedis`, stopped on exit."""
    server = PrivateRedis(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
