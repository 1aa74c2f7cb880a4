"""Every documented front door, set up as the docs write it, in front of an upstream that
shows exactly what reached it. Tests send what an attacker would send through each one.

Adding a front door or a snippet is adding an entry to :data:`SETUPS`: every test in this
folder then runs through it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._deploy import Deployment, make_deployment
from tests._procs import bastion_serve, running
from tests._proxies import caddy, nginx
from tests._services import free_port

ADMIN_ROUTES = ("admin", "items-write")


def routes(upstream: str | None) -> list[dict[str, Any]]:
    """Protected prefixes beside a public catch-all, and one path whose methods differ."""
    auth = ["api_key", "basic", "jwt"]
    table: list[dict[str, Any]] = [
        {"name": "admin", "path_prefix": "/admin", "auth": auth, "roles": ["admin"]},
        {
            "name": "items-write",
            "path_prefix": "/items",
            "methods": ["PUT", "PATCH", "DELETE"],
            "auth": auth,
            "roles": ["admin"],
        },
        {"name": "items", "path_prefix": "/items", "methods": ["GET", "POST"], "public": True},
        {"name": "api", "path_prefix": "/api", "auth": auth},
        {"name": "public", "path_prefix": "/", "public": True},
    ]
    if upstream is not None:
        for route in table:
            route["upstream"] = upstream
    return table


@dataclass
class FrontDoor:
    """A running set-up: the port a client talks to, the deployment behind it and the
    log of what reached the upstream."""

    name: str
    kind: str  # the front door: proxy, forward_auth or middleware
    port: int
    deployment: Deployment
    upstream_log: Path
    upstream_port: int
    stop: contextlib.ExitStack = field(repr=False)

    def received(self) -> list[dict[str, Any]]:
        if not self.upstream_log.exists():
            return []
        lines = self.upstream_log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def audit(self) -> list[dict[str, Any]]:
        log = self.deployment.audit_log
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        return [json.loads(line) for line in lines]

    def audit_of(self, request_id: str, seconds: float = 5.0) -> dict[str, Any]:
        """The audit line of one decision (bastion flushes its buffer within a second)."""
        deadline = time.monotonic() + seconds
        while True:
            for line in self.audit():
                if line.get("request_id") == request_id:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no audit line for {request_id}")
            time.sleep(0.05)


ECHO = "tests.adversarial.echo_upstream"


def _echo(stack: contextlib.ExitStack, folder: Path, module: str = ECHO) -> tuple[str, int, Path]:
    port, log = free_port(), folder / "upstream.jsonl"
    cmd = [sys.executable, "-m", module, "--port", str(port)]
    stack.enter_context(running([*cmd, "--log", str(log)], port))
    return f"http://127.0.0.1:{port}", port, log


def _deployment(folder: Path, upstream: str | None, port: int) -> Deployment:
    listen = {"host": "127.0.0.1", "port": port}
    return asyncio.run(
        make_deployment(folder / "bastion", upstream or "http://127.0.0.1:9", listen=listen)
    )


def _with_routes(d: Deployment, upstream: str | None) -> Deployment:
    data = yaml.safe_load(d.config_file.read_text())
    data["routes"] = routes(upstream)
    d.config_file.write_text(yaml.safe_dump(data))
    return d


def proxy(
    folder: Path, stack: contextlib.ExitStack, server: str = "granian", module: str = ECHO
) -> FrontDoor:
    upstream, upstream_port, log = _echo(stack, folder, module)
    port = free_port()
    d = _with_routes(_deployment(folder, upstream, port), upstream)
    stack.enter_context(bastion_serve(d.config_file, port, "--server", server))
    name = "proxy" if server == "granian" else f"proxy-{server}"
    return FrontDoor(name, "proxy", port, d, log, upstream_port, stack)


def forward_auth(
    folder: Path,
    stack: contextlib.ExitStack,
    name: str,
    front: Callable[..., Any],
    module: str = ECHO,
) -> FrontDoor:
    upstream, upstream_port, log = _echo(stack, folder, module)
    bastion_port = free_port()
    d = _with_routes(_deployment(folder, None, bastion_port), None)
    stack.enter_context(bastion_serve(d.config_file, bastion_port))
    port = stack.enter_context(front(folder / name, bastion_port, upstream))
    return FrontDoor(name, "forward_auth", port, d, log, upstream_port, stack)


def middleware(folder: Path, stack: contextlib.ExitStack) -> FrontDoor:
    port, log = free_port(), folder / "upstream.jsonl"
    d = _with_routes(_deployment(folder, None, port), None)
    cmd = [sys.executable, "-m", "tests.adversarial.middleware_app"]
    cmd += ["--config", str(d.config_file), "--port", str(port), "--log", str(log)]
    stack.enter_context(running(cmd, port, log=folder / "uvicorn.log"))
    return FrontDoor("middleware", "middleware", port, d, log, port, stack)


SETUPS: dict[str, Callable[[Path, contextlib.ExitStack], FrontDoor]] = {
    "proxy": proxy,
    "proxy-uvicorn": lambda folder, stack: proxy(folder, stack, "uvicorn"),
    "nginx": lambda folder, stack: forward_auth(folder, stack, "nginx", nginx),
    "caddy": lambda folder, stack: forward_auth(folder, stack, "caddy", caddy),
    "middleware": middleware,
}


class FrontDoors:
    """Starts each set-up the first time a test asks for it; all stop at the end."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.running: dict[str, FrontDoor] = {}

    def get(self, name: str) -> FrontDoor:
        if name not in self.running:
            stack = contextlib.ExitStack()
            with contextlib.ExitStack() as on_failure:
                on_failure.callback(stack.close)
                folder = self.factory.mktemp(f"adversarial-{name}")
                self.running[name] = SETUPS[name](folder, stack)
                on_failure.pop_all()
        return self.running[name]

    def close(self) -> None:
        for door in self.running.values():
            door.stop.close()


@pytest.fixture(scope="session")
def front_doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoors]:
    doors = FrontDoors(tmp_path_factory)
    try:
        yield doors
    finally:
        doors.close()


@pytest.fixture(params=sorted(SETUPS))
def door(request: pytest.FixtureRequest, front_doors: FrontDoors) -> FrontDoor:
    """Each documented front door in turn."""
    return front_doors.get(request.param)
