"""Debian's nginx in front of ``bastion serve`` itself, configured as docs/deployment.md
writes it ("Behind a reverse proxy"): bastion judges each client by the address nginx
saw, never by nginx's own (loopback). Clients connect from 127.0.0.2 and 127.0.0.3 (Linux
routes all of 127/8 to loopback); bastion trusts only 127.0.0.1, nginx's address."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bastion.identity.lockout import ADDRESS
from tests._deploy import PASSWORD, Deployment, make_deployment
from tests._procs import bastion_serve, demo_upstream, running
from tests._proxies import nginx_binary, nginx_conf
from tests._services import free_port
from tests.oauth._helpers import hidden

pytestmark = pytest.mark.nginx
DOC = Path(__file__).parents[2] / "docs" / "deployment.md"


def documented_location() -> str:
    """The nginx block of docs/deployment.md's "Behind a reverse proxy" section."""
    section = DOC.read_text(encoding="utf-8").split("### Behind a reverse proxy", 1)[1]
    found = re.search(r"```nginx\n(.*?)```", section, re.DOTALL)
    assert found, "docs/deployment.md lost its nginx example"
    return found.group(1)


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Deployment]]:
    binary = nginx_binary()
    folder = tmp_path_factory.mktemp("nginx-front")
    port, bastion_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    with demo_upstream() as upstream:
        deployment = asyncio.run(
            make_deployment(
                folder / "bastion",
                upstream,
                listen={"host": "127.0.0.1", "port": bastion_port},
                public_url=base,
                forwarded={"trusted_proxies": ["127.0.0.1/32"]},
            )
        )
        with bastion_serve(deployment.config_file, bastion_port):
            location = folder / "bastion.conf"
            location.write_text(documented_location(), encoding="utf-8")
            conf = nginx_conf(folder / "nginx", port, bastion_port, upstream, location)
            with running([binary, "-c", str(conf), "-p", str(folder / "nginx")], port):
                yield base, deployment


def client_at(base: str, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(transport=transport, base_url=base, timeout=10)


def password_login(agent: httpx.Client, username: str, password: str) -> int:
    page = agent.get("/oauth2/login")
    assert page.status_code == 200, page.text
    return agent.post("/oauth2/login", data={
        "csrf": hidden(page.text, "csrf"), "tx": hidden(page.text, "tx"), "step": "password",
        "username": username, "password": password,
    }).status_code  # fmt: skip


def test_metrics_are_not_open_through_the_proxy(front: tuple[str, Deployment]) -> None:
    base, _ = front
    with client_at(base, "127.0.0.2") as remote:
        assert remote.get("/metrics").status_code == 404
        # nginx overwrites a client's X-Forwarded-For: claiming nginx's address is no use
        claimed = remote.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
        assert claimed.status_code == 404
        assert remote.get("/healthz").status_code == 200


def test_one_guesser_through_nginx_locks_out_only_itself(front: tuple[str, Deployment]) -> None:
    base, _ = front
    with client_at(base, "127.0.0.2") as guesser, client_at(base, "127.0.0.3") as owner:
        sprayed = [password_login(guesser, f"user{n}", "guess") for n in range(ADDRESS.free + 1)]
        assert sprayed == [401] * (ADDRESS.free + 1)
        assert password_login(guesser, "alice", PASSWORD) == 429
        guesser.headers["X-Forwarded-For"] = "198.51.100.4"  # nginx overwrites it
        assert password_login(guesser, "alice", PASSWORD) == 429
        assert password_login(owner, "alice", PASSWORD) == 303
