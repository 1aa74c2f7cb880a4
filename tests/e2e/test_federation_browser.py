"""Login with an external OpenID provider in Chromium: panva's oidc-provider (started
from tests/interop/node/idp.mjs) as the upstream. An account is linked from the account
page, then signs in with the provider's button; an unlinked external account is refused.
The provider's pages carry a strict ``form-action`` (``--strict-form-action``), which
Chromium applies to every redirect after its sign-in form's post: bastion's answer to the
provider's callback must not redirect on to a client's origin."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests._deploy import make_deployment
from tests._procs import bastion_serve, demo_upstream
from tests._services import free_port
from tests.e2e._client import RelyingParty, relying_party, sign_out, start
from tests.e2e.conftest import Served, run_async, shot
from tests.e2e.test_client_sign_in_browser import allow
from tests.e2e.test_login_browser import sign_in
from tests.interop.conftest import NODE_DIR, NodePeers

Page = Any
SECRET = "bastion-test-secret-0123456789abcdef"  # idp.mjs's default client secret

if shutil.which("node") is None or not (NODE_DIR / "node_modules/oidc-provider").is_dir():
    pytest.skip("needs Node.js and tests/interop/node/node_modules", allow_module_level=True)


@pytest.fixture(scope="module")
def federated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("fed")
    port = free_port()
    base = f"http://localhost:{port}"
    callback = f"{base}/oauth2/login/external/idp/callback"
    peers = NodePeers(shutil.which("node") or "node", folder / "logs")
    idp_args = ("--redirect-uri", callback, "--email-domain", "idp.example", "--strict-form-action")
    with peers.idp(*idp_args) as idp, demo_upstream() as upstream:
        provider = {"name": "idp", "display_name": "Example IdP", "issuer": idp.issuer,
                    "client_id": "bastion-test", "client_secret": SECRET,
                    "scopes": ["openid", "email"]}  # fmt: skip
        deployment = run_async(
            lambda: make_deployment(
                folder / "d", upstream, listen={"host": "127.0.0.1", "port": port},
                public_url=base, oauth={"secure_cookies": True, "login_providers": [provider]},
            )
        )  # fmt: skip
        with bastion_serve(deployment.config_file, port):
            yield Served(base, deployment)


@pytest.fixture(scope="module")
def fed_rp(federated: Served) -> Iterator[RelyingParty]:
    with relying_party() as party:
        party.register(federated.deployment.config_file)
        yield party


def at_provider(page: Page, login: str, screenshot: str | None = None) -> None:
    """oidc-provider's devInteractions: any login and password, then consent."""
    page.wait_for_selector("input[name=login]")
    if screenshot:
        shot(page, screenshot)
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "anything")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("input[name=prompt][value=consent]").count():
        page.click("button[type=submit]")


def test_link_then_sign_in_with_the_provider(page: Page, federated: Served) -> None:
    user = federated.add_user("fred")
    sign_in(page, federated, user)
    page.wait_for_url(f"{federated.base}/oauth2/account")
    assert "Not linked." in page.inner_text("main")
    page.click("#link-idp")
    at_provider(page, "fred-at-idp", "15-external-provider")
    page.wait_for_url(f"{federated.base}/oauth2/account")
    assert "Linked: you can sign in with Example IdP." in page.inner_text("main")
    page.context.clear_cookies()
    page.goto(f"{federated.base}/oauth2/account")
    shot(page, "16-login-with-provider-button")
    page.click("#external-idp")
    at_provider(page, "fred-at-idp")
    page.wait_for_url(f"{federated.base}/oauth2/account")
    assert page.inner_text("#subject") == user
    assert "external:idp" in page.inner_text("#activity")
    assert page.console_errors == []


def test_an_unlinked_external_account_is_refused(page: Page, federated: Served) -> None:
    page.goto(f"{federated.base}/oauth2/login")
    page.click("#external-idp")
    at_provider(page, "nobody-here")
    page.wait_for_selector("h1")
    assert page.inner_text("h1") == "No account linked"
    shot(page, "17-external-not-linked")
    page.goto(f"{federated.base}/oauth2/account")
    assert page.url.startswith(f"{federated.base}/oauth2/login")


def test_a_verified_email_links_on_first_sign_in(page: Page, federated: Served) -> None:
    user = federated.add_user("gina", email="gina@idp.example", email_verified=True)
    page.goto(f"{federated.base}/oauth2/login")
    page.click("#external-idp")
    at_provider(page, "gina")  # the IdP vouches for gina@idp.example, verified
    page.wait_for_url(f"{federated.base}/oauth2/account")
    assert page.inner_text("#subject") == user
    assert page.console_errors == []


def test_an_unverified_local_email_is_not_linked(page: Page, federated: Served) -> None:
    federated.add_user("hank", email="hank@idp.example", email_verified=False)
    page.goto(f"{federated.base}/oauth2/login")
    page.click("#external-idp")
    at_provider(page, "hank")
    page.wait_for_selector("h1")
    assert page.inner_text("h1") == "No account linked"


def test_a_client_signs_in_a_returning_user_through_the_provider(
    page: Page, federated: Served, fed_rp: RelyingParty
) -> None:
    user = federated.add_user("ida", email="ida@idp.example", email_verified=True)
    flow = start(page, federated.base, fed_rp)
    page.click("#external-idp")
    at_provider(page, "ida")
    allow(page)
    tokens = flow.landed(page, user)
    sign_out(page, federated.base, fed_rp, tokens["id_token"], post=True)
    # A fresh browser: the provider's sign-in form again; bastion's consent is
    # remembered, so the provider's post leads on to the client's origin.
    page.context.clear_cookies()
    flow = start(page, federated.base, fed_rp, fed_rp.bounce)
    page.click("#external-idp")
    at_provider(page, "ida")
    flow.landed(page, user, at=f"{fed_rp.other_origin}/landed")
    assert page.console_errors == []
