"""A client on another origin signs users in through Chromium: the first time (consent)
and again (consent remembered; after signing out; in a fresh browser), with a password,
TOTP, a recovery code and a step-up.

Chromium applies the ``form-action`` of the page that posted a form to every redirect
that follows the post. Each sign-in here ends with a form post on bastion's pages
(password, code, consent) whose answer leads to the client's origin, or, through
``/bounce``, on to a third one; signing out is a form on the client's page that may post
to bastion only."""

from __future__ import annotations

import re
import time
from typing import Any

from bastion.identity import totp
from tests._deploy import PASSWORD
from tests.e2e._client import WAIT_MS, RelyingParty, sign_out, start
from tests.e2e.conftest import Served, shot
from tests.e2e.test_login_browser import code_after, enrol_totp, sign_in

Page = Any
MFA = "urn:bastion:acr:mfa"


def log_in(page: Page, username: str) -> None:
    """The password form bastion shows the client's user."""
    page.wait_for_selector("#password")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def allow(page: Page, screenshot: str | None = None) -> None:
    page.wait_for_selector("button[value=allow]")
    if screenshot:
        shot(page, screenshot)
    page.click("button[value=allow]")


def test_password_first_time_then_as_a_returning_user(
    page: Page, served: Served, rp: RelyingParty
) -> None:
    user = served.add_user("rhea")
    # First time: password, then the consent page; denying sends the error back.
    start(page, served.base, rp)
    log_in(page, user)
    page.wait_for_selector("button[value=deny]")
    page.click("button[value=deny]")
    page.wait_for_url(f"{rp.callback}?error=access_denied*", timeout=WAIT_MS)
    flow = start(page, served.base, rp)
    allow(page, "20-client-consent")
    flow.landed(page, user)
    # Signed in, consent remembered: straight back (no form on the way).
    start(page, served.base, rp).landed(page, user)
    # prompt=login: the password again, then back without a consent page.
    flow = start(page, served.base, rp, prompt="login")
    log_in(page, user)
    tokens = flow.landed(page, user)
    # Signed out (the client's form posts to bastion), then signed in again.
    sign_out(page, served.base, rp, tokens["id_token"], post=True)
    flow = start(page, served.base, rp)
    log_in(page, user)
    flow.landed(page, user)
    # A fresh browser, and a callback that hands the browser on to another origin.
    page.context.clear_cookies()
    flow = start(page, served.base, rp, rp.bounce)
    log_in(page, user)
    flow.landed(page, user, at=f"{rp.other_origin}/landed")
    assert page.console_errors == []


def test_totp_and_recovery_codes_first_time_then_as_a_returning_user(
    page: Page, served: Served, rp: RelyingParty
) -> None:
    user = served.add_user("tomas")
    sign_in(page, served, user)
    page.wait_for_url(f"{served.base}/oauth2/account")
    secret = enrol_totp(page)
    first = totp.totp(secret, time.time())
    codes = re.findall(r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}", page.inner_text("#recovery-codes"))
    # First time, step-up: the session has the password only and the client asks for MFA.
    flow = start(page, served.base, rp, acr_values=MFA)
    page.wait_for_selector("input.otp")
    page.click("text=Use a recovery code")
    page.fill("#code", codes[0])
    page.click("button[type=submit]")
    allow(page)
    tokens = flow.landed(page, user)
    assert tokens["claims"]["acr"] == MFA
    # Signed out (a link), then password and TOTP in the same browser: straight back.
    sign_out(page, served.base, rp, tokens["id_token"], post=False)
    flow = start(page, served.base, rp)
    log_in(page, user)
    page.wait_for_selector("input.otp")
    page.fill("#code", code_after(secret, first))
    page.click("button[type=submit]")
    assert flow.landed(page, user)["claims"]["acr"] == MFA
    # A fresh browser: password and a recovery code.
    page.context.clear_cookies()
    flow = start(page, served.base, rp)
    log_in(page, user)
    page.click("text=Use a recovery code")
    page.fill("#code", codes[1])
    page.click("button[type=submit]")
    assert flow.landed(page, user)["claims"]["acr"] == MFA
    assert page.console_errors == []
