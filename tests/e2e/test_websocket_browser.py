"""A page in Chromium opens a WebSocket through bastion's proxy with its bearer token
offered as a subprotocol (browsers cannot set Authorization on a WebSocket), and a page
of another origin is refused (cross-site WebSocket hijacking)."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import Served

Page = Any

OPEN = """([url, token]) => new Promise((resolve) => {
    const ws = new WebSocket(url, ["bastion", "bastion.bearer." + token]);
    ws.onopen = () => ws.send("whoami");
    ws.onmessage = (event) => {
        resolve({opened: true, protocol: ws.protocol, seen: JSON.parse(event.data)});
        ws.close();
    };
    ws.onclose = (event) => resolve({opened: false, code: event.code});
})"""


def test_a_page_opens_a_websocket_with_its_token(page: Page, served: Served) -> None:
    token = served.deployment.jwt()
    page.goto(f"{served.base}/public/x")  # a page of the origin the route names
    url = served.base.replace("http://", "ws://") + "/live/feed"
    result = page.evaluate(OPEN, [url, token])
    assert result["opened"], result
    assert result["protocol"] == "bastion"
    headers = result["seen"]["headers"]
    assert headers["x-bastion-subject"] == "alice"
    assert headers["x-bastion-credential"] == "jwt"
    assert page.console_errors == []


def test_a_page_of_another_origin_is_refused(page: Page, served: Served) -> None:
    token = served.deployment.jwt()
    other = served.base.replace("localhost", "127.0.0.1")  # another origin, same server
    page.goto(f"{other}/public/x")
    url = served.base.replace("http://", "ws://") + "/live/feed"
    result = page.evaluate(OPEN, [url, token])
    assert result == {"opened": False, "code": 1006}  # refused at the handshake (403)
    deadline = time.monotonic() + 5  # the audit log is written within a second
    while '"reason":"origin_not_allowed"' not in served.deployment.audit_log.read_text():
        assert time.monotonic() < deadline, "the refusal was not audited"
        time.sleep(0.1)
