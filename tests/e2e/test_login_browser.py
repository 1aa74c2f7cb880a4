"""Password and TOTP sign-in in Chromium; cookie flags; a cross-site post refused."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bastion.identity import totp
from tests._deploy import PASSWORD
from tests._services import free_port
from tests.e2e.conftest import Served, shot

Page = Any


def sign_in(page: Page, served: Served, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{served.base}/oauth2/account")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def enrol_totp(page: Page) -> str:
    page.click("#add-totp")
    page.wait_for_selector(".qr svg")
    secret = page.inner_text("#totp-secret").replace(" ", "")
    page.fill("#code", totp.totp(secret, time.time()))
    page.click("button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    return secret


def code_after(secret: str, used: str) -> str:
    """A code for a step after the one used (the server accepts one step ahead)."""
    code = totp.totp(secret, time.time())
    return code if code != used else totp.totp(secret, time.time() + 30)


def test_password_login_and_cookie_flags(page: Page, served: Served) -> None:
    user = served.add_user("pat")
    page.goto(f"{served.base}/oauth2/account")
    assert page.url.startswith(f"{served.base}/oauth2/login")
    shot(page, "01-login")
    page.fill("#username", user)
    page.fill("#password", "wrong password here")
    page.click("button[type=submit]")
    assert page.inner_text(".error") == "Wrong username or password."
    shot(page, "02-login-error")
    sign_in(page, served, user)
    page.wait_for_url(f"{served.base}/oauth2/account")
    assert page.inner_text("#subject") == user
    shot(page, "03-account")
    cookies = {c["name"]: c for c in page.context.cookies()}
    cookie = cookies["__Host-bastion-session"]
    assert cookie["secure"] is True
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["domain"] == "localhost"  # host-only: no Domain attribute
    assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts
    assert page.console_errors == []


def test_totp_enrolment_then_login_with_the_code(page: Page, served: Served) -> None:
    user = served.add_user("tess")
    sign_in(page, served, user)
    page.wait_for_url(f"{served.base}/oauth2/account")
    page.click("#add-totp")
    page.wait_for_selector(".qr svg")
    shot(page, "04-totp-enrol")
    secret = page.inner_text("#totp-secret").replace(" ", "")
    first = totp.totp(secret, time.time())
    page.fill("#code", first)
    page.click("button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    codes = re.findall(r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}", page.inner_text("#recovery-codes"))
    assert len(codes) == 10
    shot(page, "05-recovery-codes")
    page.context.clear_cookies()
    sign_in(page, served, user)
    page.wait_for_selector("input.otp")
    shot(page, "06-totp-step")
    page.fill("#code", "000000")
    page.click("button[type=submit]")
    assert "not right" in page.inner_text(".error")
    page.fill("#code", code_after(secret, first))
    page.click("button[type=submit]")
    page.wait_for_url(f"{served.base}/oauth2/account")
    assert "two-step verified" in page.inner_text("main")
    activity = page.inner_text("#activity")
    assert "totp" in activity
    assert "127.0.0.1" in activity
    # Recovery code in a fresh browser session.
    page.context.clear_cookies()
    sign_in(page, served, user)
    page.click("text=Use a recovery code")
    shot(page, "07-recovery-step")
    page.fill("#code", codes[0])
    page.click("button[type=submit]")
    page.wait_for_url(f"{served.base}/oauth2/account")
    assert "9 unused" in page.inner_text("main")
    assert page.console_errors == []


class _Evil(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}">'
            '<input name="confirm" value="yes"></form>'
            '<script>document.getElementById("f").submit()</script>'
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def evil_site(served: Served) -> Iterator[str]:
    _Evil.target = f"{served.base}/oauth2/account/sessions/end-all"
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Evil)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_cross_site_post_without_csrf_is_refused(
    page: Page, served: Served, evil_site: str
) -> None:
    user = served.add_user("cass")
    sign_in(page, served, user)
    page.wait_for_url(f"{served.base}/oauth2/account")
    with page.expect_navigation(url=re.compile(r".*/oauth2/account/sessions/end-all")) as nav:
        page.goto(evil_site)
    assert nav.value.status == 400
    shot(page, "08-csrf-refused")
    page.goto(f"{served.base}/oauth2/account")
    assert page.url == f"{served.base}/oauth2/account"  # still signed in
    assert page.inner_text("#subject") == user


def test_protected_action_asks_for_the_second_factor(page: Page, served: Served) -> None:
    user = served.add_user("stu")
    sign_in(page, served, user)
    page.wait_for_url(f"{served.base}/oauth2/account")
    secret = enrol_totp(page)
    first = totp.totp(secret, time.time())
    page.goto(f"{served.base}/oauth2/account")
    # The session was opened with the password only: new recovery codes need the 2nd factor.
    page.click("#new-codes")
    page.wait_for_selector("input.otp")
    assert "Verify it" in page.inner_text("h1")
    shot(page, "09-step-up")
    before = {c["name"]: c["value"] for c in page.context.cookies()}["__Host-bastion-session"]
    page.fill("#code", code_after(secret, first))
    page.click("button[type=submit]")
    page.wait_for_url(f"{served.base}/oauth2/account")
    after = {c["name"]: c["value"] for c in page.context.cookies()}["__Host-bastion-session"]
    assert after != before  # a new session id at step-up
    assert "two-step verified" in page.inner_text("main")
    page.click("#new-codes")
    page.wait_for_selector("#recovery-codes")
    assert "New recovery codes" in page.inner_text("h1")
