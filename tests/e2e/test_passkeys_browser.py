"""Passkeys in Chromium through CDP's virtual authenticator (ctap2, internal, resident
keys, user verification): registration, usernameless sign-in, passkey as the second step,
and refusals when user verification fails or the signature is bad."""

from __future__ import annotations

from typing import Any

from tests.e2e._client import RelyingParty, sign_out, start
from tests.e2e.conftest import Served, shot
from tests.e2e.test_client_sign_in_browser import allow, log_in
from tests.e2e.test_login_browser import sign_in

Page = Any


def authenticator(page: Page) -> tuple[Any, str]:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }})  # fmt: skip
    return cdp, added["authenticatorId"]


def add_passkey(page: Page, served: Served, name: str) -> None:
    page.goto(f"{served.base}/oauth2/account")
    page.click("#add-passkey")
    page.wait_for_selector("#passkey-register")
    page.fill("#passkey-name", name)
    shot(page, "10-passkey-add")
    page.click("#passkey-register")
    page.wait_for_url(f"{served.base}/oauth2/account")


def passkey_sign_in(page: Page, served: Served) -> None:
    page.goto(f"{served.base}/oauth2/login")
    page.click("#passkey-link")
    page.wait_for_selector("#passkey-signin")
    page.click("#passkey-signin")


def test_register_then_sign_in_without_a_username(page: Page, served: Served) -> None:
    cdp, auth_id = authenticator(page)
    user = served.add_user("pia")
    sign_in(page, served, user)
    page.wait_for_url(f"{served.base}/oauth2/account")
    add_passkey(page, served, "Virtual key")
    assert "Virtual key" in page.inner_text("main")
    shot(page, "11-account-with-passkey")
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth_id})["credentials"]
    assert len(stored) == 1
    assert stored[0]["isResidentCredential"] is True  # discoverable
    page.context.clear_cookies()
    passkey_sign_in(page, served)
    # Screenshot after the sign-in's navigation: one taken mid-navigation can hang.
    page.wait_for_url(f"{served.base}/oauth2/account")
    shot(page, "12-passkey-login")
    assert page.inner_text("#subject") == user
    assert "two-step verified" in page.inner_text("main")
    assert "passkey" in page.inner_text("#activity")
    after = cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth_id})["credentials"]
    assert after[0]["signCount"] > stored[0]["signCount"]
    # With a passkey, the password alone is no longer enough: the passkey is the 2nd step.
    page.context.clear_cookies()
    sign_in(page, served, user)
    page.wait_for_selector("#passkey-link")
    shot(page, "13-second-step-passkey")
    page.click("#passkey-link")
    page.click("#passkey-signin")
    page.wait_for_url(f"{served.base}/oauth2/account")
    assert "two-step verified" in page.inner_text("main")
    assert page.console_errors == []


def test_without_user_verification_or_with_a_bad_signature_refused(
    page: Page, served: Served
) -> None:
    cdp, auth_id = authenticator(page)
    user = served.add_user("uma")
    sign_in(page, served, user)
    page.wait_for_url(f"{served.base}/oauth2/account")
    add_passkey(page, served, "Key")
    page.context.clear_cookies()

    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": auth_id, "isUserVerified": False})
    passkey_sign_in(page, served)
    page.wait_for_selector("#passkey-error:not([hidden])")
    shot(page, "14-passkey-refused")
    assert page.url.startswith(f"{served.base}/oauth2/login/passkey")

    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": auth_id, "isUserVerified": True})
    cdp.send("WebAuthn.setResponseOverrideBits",
             {"authenticatorId": auth_id, "isBogusSignature": True})  # fmt: skip
    page.goto(f"{served.base}/oauth2/login/passkey")
    page.click("#passkey-signin")
    page.wait_for_selector("#passkey-error:not([hidden])")
    assert "could not be used" in page.inner_text("#passkey-error")
    page.goto(f"{served.base}/oauth2/account")
    assert page.url.startswith(f"{served.base}/oauth2/login")  # never signed in

    cdp.send("WebAuthn.setResponseOverrideBits",
             {"authenticatorId": auth_id, "isBogusSignature": False})  # fmt: skip
    passkey_sign_in(page, served)
    page.wait_for_url(f"{served.base}/oauth2/account")


def test_a_client_signs_in_a_returning_user_with_a_passkey(
    page: Page, served: Served, rp: RelyingParty
) -> None:
    authenticator(page)
    user = served.add_user("petra")
    sign_in(page, served, user)
    page.wait_for_url(f"{served.base}/oauth2/account")
    add_passkey(page, served, "Key")
    page.context.clear_cookies()
    # First time: usernameless passkey sign-in, then the consent page.
    flow = start(page, served.base, rp)
    page.click("#passkey-link")
    page.click("#passkey-signin")
    allow(page)
    tokens = flow.landed(page, user)
    assert tokens["claims"]["amr"] == ["hwk", "mfa"]
    # Signed out, then again in the same browser: straight back to the client.
    sign_out(page, served.base, rp, tokens["id_token"], post=True)
    flow = start(page, served.base, rp)
    page.click("#passkey-link")
    page.click("#passkey-signin")
    flow.landed(page, user)
    # A fresh browser: the password (a form post), then the passkey as the second step.
    page.context.clear_cookies()
    flow = start(page, served.base, rp, rp.bounce)
    log_in(page, user)
    page.click("#passkey-link")
    page.click("#passkey-signin")
    flow.landed(page, user, at=f"{rp.other_origin}/landed")
    assert page.console_errors == []
