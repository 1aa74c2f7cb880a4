"""A form post whose answer leaves for the client is answered with a page of bastion's
that moves on by ``<meta http-equiv="refresh">``, never with a redirect: Chromium applies
the posting page's ``form-action 'self'`` to every redirect after the post and stopped a
returning user's sign-in (tests/e2e/test_client_sign_in_browser.py drives Chromium).
Every page keeps ``form-action 'self'``; the client's origin is never added."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from bastion.gateway.app import GatewayApp
from tests.oauth._helpers import (
    REDIRECT,
    Clients,
    Registered,
    browser,
    consent,
    follow_to_client,
    login,
    next_location,
    pkce,
)
from tests.oauth.test_authorization_code import authorize, exchange

BYE = "https://app.example/bye"
STRICT = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def params(reg: Registered, **extra: str) -> str:
    _verifier, challenge = pkce()
    values = {"response_type": "code", "client_id": reg.client_id, "redirect_uri": REDIRECT,
              "scope": "openid", "state": "st", "code_challenge": challenge,
              "code_challenge_method": "S256", **extra}  # fmt: skip
    return urlencode(values)


def assert_hand_off(page: httpx.Response, to: str) -> dict[str, list[str]]:
    """``page`` is the hand-off page to ``to``; the query of the address it moves on to."""
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == STRICT
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "same-origin"
    location = next_location(page)
    assert location.startswith(to)
    return parse_qs(urlsplit(location).query)


async def test_a_returning_users_password_post_ends_on_a_page_not_a_redirect(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    reg = await clients.web()
    first = browser(app, issuer)
    await follow_to_client(
        first, await login(first, await first.get(f"/oauth2/authorize?{params(reg)}"))
    )
    # Consent remembered, a new browser: the password post → resume → the client.
    agent = browser(app, issuer)
    posted = await login(agent, await agent.get(f"/oauth2/authorize?{params(reg)}"))
    assert posted.status_code == 303
    resume = posted.headers["location"]
    assert resume.startswith(f"{issuer}/oauth2/authorize/resume?tx=")  # same origin
    query = assert_hand_off(await agent.get(resume), REDIRECT + "?")
    assert query["state"] == ["st"]
    assert query["iss"] == [issuer]
    assert "code" in query
    # Signed in now: the client's own GET is answered with a plain redirect, its form
    # post (OIDC Core §3.1.2.1) with the page.
    again = await agent.get(f"/oauth2/authorize?{params(reg)}")
    assert again.status_code == 302
    assert again.headers["location"].startswith(REDIRECT + "?code=")
    form = dict(parse_qs(params(reg)))
    posted = await agent.post("/oauth2/authorize", data={k: v[0] for k, v in form.items()})
    assert "code" in assert_hand_off(posted, REDIRECT + "?")
    await first.aclose()
    await agent.aclose()


async def test_consent_page_and_its_answers_keep_form_action_self(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    reg = await clients.web()
    agent = browser(app, issuer)
    for decision, expected in (("deny", "error"), ("allow", "code")):
        page = await agent.get(f"/oauth2/authorize?{params(reg)}")
        if page.status_code == 303:  # not signed in yet: the login page, then back here
            page = await agent.get((await login(agent, page)).headers["location"])
        assert 'name="decision"' in page.text
        # Before: the consent page allowed the client's origin in form-action.
        assert page.headers["content-security-policy"] == STRICT
        query = assert_hand_off(await consent(agent, page, decision), REDIRECT + "?")
        assert expected in query
    await agent.aclose()


async def test_logout_posted_by_the_client_ends_on_a_page_a_link_redirects(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    reg = await clients.web()
    query, verifier, agent = await authorize(app, issuer, clients, reg, scope="openid")
    token = await exchange(clients, reg, query, verifier)
    fields = {"id_token_hint": token["id_token"], "post_logout_redirect_uri": BYE}
    posted = await agent.post("/oauth2/logout", data={**fields, "state": "p"})
    assert assert_hand_off(posted, BYE + "?") == {"state": ["p"]}
    assert "bastion-session=" in posted.headers["set-cookie"]  # the cookie is cleared
    assert (await agent.get("/oauth2/account")).status_code == 303  # signed out
    linked = await agent.get(f"/oauth2/logout?{urlencode({**fields, 'state': 'g'})}")
    assert linked.status_code == 302
    assert linked.headers["location"] == BYE + "?state=g"
    await agent.aclose()
