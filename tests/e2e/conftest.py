"""Browser tests: Python Playwright driving Debian's Chromium (never a downloaded browser)
against a real ``bastion serve`` started here on 127.0.0.1.

The browser uses ``http://localhost:PORT``: Chromium treats http://localhost as a secure
context, so it accepts the ``__Host-``/``Secure`` session cookie and WebAuthn there, as on
an https deployment (``public_url`` is that URL and ``oauth.secure_cookies`` is on).
Screenshots of every page go to ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bastion.cli.users import _set_profile
from bastion.credentials._passwords import hash_password
from bastion.store import open_store
from tests._deploy import PASSWORD, Deployment, base_config, make_deployment
from tests._procs import bastion_serve, demo_upstream
from tests._services import free_port
from tests.e2e._client import RelyingParty, relying_party

CHROMIUM = os.environ.get("BASTION_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP localhost 127.0.0.1",
]
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"

if not Path(CHROMIUM).exists():  # scripts/test installs Debian's chromium
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

playwright_sync = pytest.importorskip("playwright.sync_api")


T = TypeVar("T")


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine in a thread of its own: Playwright's sync API keeps an event loop
    running in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@dataclass
class Served:
    base: str  # http://localhost:PORT
    deployment: Deployment

    def add_user(
        self,
        username: str,
        password: str = PASSWORD,
        *,
        email: str | None = None,
        email_verified: bool = False,
    ) -> str:
        async def add() -> None:
            async with open_store(self.deployment.config) as ctx:
                await ctx.users.add(username, hash_password(password), roles=["user"])
                if email is not None:
                    profile = {"email": email, "email_verified": email_verified}
                    await _set_profile(ctx, username, profile)

        run_async(add)
        return username


def live_route(upstream: str, origin: str) -> dict[str, Any]:
    """A WebSocket route that pages of ``origin`` (only) may open with a bearer token."""
    return {
        "name": "live",
        "path_prefix": "/live",
        "upstream": upstream,
        "auth": ["jwt"],
        "websocket": True,
        "websocket_origins": [origin],
    }


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("e2e")
    port = free_port()
    base = f"http://localhost:{port}"
    with demo_upstream() as upstream:
        deployment = run_async(
            lambda: make_deployment(
                folder,
                upstream,
                listen={"host": "127.0.0.1", "port": port},
                public_url=base,
                oauth={"secure_cookies": True},
                rate_limits={"per_ip": "100000/minute", "per_principal": "100000/minute",
                             "failed_auth_per_ip": "10000/minute"},
                routes=[live_route(upstream, base), *base_config(upstream)["routes"]],
            )
        )  # fmt: skip
        with bastion_serve(deployment.config_file, port):
            yield Served(base, deployment)


@pytest.fixture(scope="session")
def rp(served: Served) -> Iterator[RelyingParty]:
    """An OAuth client on another origin, registered with ``served``."""
    with relying_party() as party:
        party.register(served.deployment.config_file)
        yield party


@pytest.fixture
def chromium() -> Iterator[object]:
    # Per test, not per session: Playwright's sync API keeps an event loop marked running
    # in this thread while it is started, which would break the async tests that
    # pytest-randomly puts after a browser test.
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: object) -> Iterator[object]:
    context = chromium.new_context(locale="en-GB", viewport={"width": 1100, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    # A CSP violation or any script error on bastion's pages fails the test.
    # (A page answered 401/400/429 on purpose is logged as "Failed to load resource".)
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.console_errors = errors
    yield page
    context.close()


def shot(page: object, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
