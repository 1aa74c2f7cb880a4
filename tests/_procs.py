"""Start real processes for interop tests (127.0.0.1 only) and always stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests._services import free_port, port_open

BASTION = [sys.executable, "-m", "bastion.cli"]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {proc.args}")
        if port_open(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open for {proc.args}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@contextlib.contextmanager
def running(
    cmd: list[str],
    port: int,
    *,
    cwd: Path | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        stop(proc)
        if log:
            out.close()  # type: ignore[union-attr]


@contextlib.contextmanager
def demo_upstream() -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "bastion.demo", "--port", str(port)]
    with running(cmd, port):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def bastion_serve(config_file: Path, port: int, *extra: str, scheme: str = "http") -> Iterator[str]:
    log = config_file.parent / "serve.log"
    cmd = [*BASTION, "serve", "--config", str(config_file), *extra]
    with running(cmd, port, log=log):
        base = f"{scheme}://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                probe = httpx.get(base + "/healthz", timeout=2, verify=False)  # noqa: S501
                if probe.status_code == 200:
                    break
            time.sleep(0.1)
        yield base
