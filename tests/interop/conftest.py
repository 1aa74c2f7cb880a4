"""Real OAuth/OIDC peers from npm (tests/interop/node/): panva's oidc-provider as an
external identity provider and openid-client as a relying party, run with Node."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).parent / "node"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "node: needs Node.js and tests/interop/node/node_modules")


@dataclass
class Idp:
    """A running ``idp.mjs``: its ready line (``issuer``, ``discovery_url`` ...)."""

    proc: subprocess.Popen[str]
    info: dict[str, Any]

    @property
    def issuer(self) -> str:
        return str(self.info["issuer"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


class NodePeers:
    """Starts ``idp.mjs`` and runs ``rp.mjs``; every process started is stopped."""

    def __init__(self, node: str, logs: Path) -> None:
        self.node = node
        self.logs = logs

    @contextlib.contextmanager
    def idp(self, *args: str, ready_seconds: float = 20.0) -> Iterator[Idp]:
        """Run oidc-provider with ``idp.mjs`` options until the block ends."""
        self.logs.mkdir(parents=True, exist_ok=True)
        err = open(self.logs / "idp.log", "a")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [self.node, str(NODE_DIR / "idp.mjs"), *args],
            cwd=NODE_DIR,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        idp = Idp(proc, {})
        try:
            idp.info = json.loads(_read_line(proc, ready_seconds))
            yield idp
        finally:
            idp.stop()
            err.close()
            if proc.stdout is not None:
                proc.stdout.close()

    def rp(self, *args: str, timeout: float = 60.0) -> dict[str, Any]:
        """Run ``rp.mjs`` with these options; its JSON result (``error`` on failure)."""
        done = subprocess.run(
            [self.node, str(NODE_DIR / "rp.mjs"), *args],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        lines = done.stdout.strip().splitlines()
        if not lines:
            why = f"rp.mjs printed nothing (exit {done.returncode})"
            return {"error": why, "stderr": done.stderr}
        result: dict[str, Any] = json.loads(lines[-1])
        return result


def _read_line(proc: subprocess.Popen[str], seconds: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                line = proc.stdout.readline()
                if line:
                    return line
            if proc.poll() is not None:
                raise RuntimeError(f"idp.mjs exited with {proc.returncode} before it was ready")
    raise TimeoutError("idp.mjs printed no ready line")


@pytest.fixture(scope="session")
def node_peers(tmp_path_factory: pytest.TempPathFactory) -> NodePeers:
    node = shutil.which("node")
    missing = (
        "Node.js is not installed"
        if node is None
        else "tests/interop/node/node_modules is missing (cd there and run: npm ci)"
        if not (NODE_DIR / "node_modules" / "oidc-provider").is_dir()
        else None
    )
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; scripts/test installs it")
        pytest.skip(missing)
    assert node is not None
    return NodePeers(node, tmp_path_factory.mktemp("node-peers"))
