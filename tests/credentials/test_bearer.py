"""BearerAuthenticator: header parsing, issuer choice, cache, revocation, challenges."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from joserfc.jwk import OctKey

from bastion.config import AuthMethod
from bastion.credentials import Authenticator
from bastion.credentials.bearer import BearerAuthenticator, token_in_query
from bastion.errors import (
    AuthenticationError,
    BadRequest,
    CredentialRefused,
    InvalidToken,
    Unavailable,
)
from bastion.model import RequestView
from bastion.tokens import InMemoryRevocations, mint_jwt
from tests.tokens._helpers import (
    AUD,
    EC_KEY,
    EC_KID,
    HS_SECRET,
    NOW,
    FakeClock,
    JwksServer,
    claims,
    es256,
    hs_issuer,
    issuer,
    jwks_server,
)

OTHER_ISS = "https://other.example"


def req(authorization: str | None = None, query: str = "") -> RequestView:
    headers = {"authorization": authorization} if authorization is not None else {}
    return RequestView(method="GET", path="/orders", query=query, headers=headers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def revocations(clock: FakeClock) -> InMemoryRevocations:
    return InMemoryRevocations(clock=clock)


@pytest.fixture
def auth(clock: FakeClock, revocations: InMemoryRevocations) -> BearerAuthenticator:
    return BearerAuthenticator.from_config(
        [issuer(), issuer(name="other", issuer=OTHER_ISS), hs_issuer()],
        clock=clock,
        revoked=revocations,
    )


def test_implements_the_protocol(auth: BearerAuthenticator) -> None:
    checked: Authenticator = auth
    assert checked.method is AuthMethod.JWT


@pytest.mark.parametrize(
    ("value", "present"),
    [
        ("Bearer abc.def.ghi", True),
        ("bearer abc.def.ghi", True),
        ("BEARER abc", True),
        ("Bearer", True),  # present but malformed: authenticate() says why
        ("Bearer bst_abcdef", False),  # an API key in the Bearer scheme
        ("Basic dXNlcjpwYXNz", False),
        ("Bearerabc", False),
        ("", False),
        (None, False),
    ],
)
def test_present(auth: BearerAuthenticator, value: str | None, present: bool) -> None:
    assert auth.present(req(value)) is present


def test_custom_api_key_prefix(clock: FakeClock) -> None:
    a = BearerAuthenticator.from_config([issuer()], clock=clock, api_key_prefix="acme_")
    assert not a.present(req("Bearer acme_123"))
    assert a.present(req("Bearer bst_123"))


async def test_valid_token(auth: BearerAuthenticator) -> None:
    principal = await auth.authenticate(req(f"Bearer {es256()}"))
    assert principal.subject == "user-42"
    assert principal.issuer == "https://issuer.example"


@pytest.mark.parametrize(
    "query",
    [
        "access_token=abc",
        "a=1&access_token=",
        "ACCESS_TOKEN=x",
        "access%5Ftoken=x",
        "x=1;access_token=2",
    ],
)
async def test_token_in_query_refused(auth: BearerAuthenticator, query: str) -> None:
    request = req(f"Bearer {es256()}", query=query)
    assert auth.present(request)
    with pytest.raises(CredentialRefused) as info:
        await auth.authenticate(request)
    assert info.value.reason == "token_in_query"
    assert info.value.detail is not None
    assert "URL" in info.value.detail
    assert es256() not in str(info.value.detail)


def test_query_without_token_is_fine() -> None:
    assert not token_in_query("page=2&sort=access")
    assert not token_in_query("my_access_token_count=1")


@pytest.mark.parametrize(
    ("value", "error", "reason"),
    [
        ("Bearer ", BadRequest, "malformed_authorization"),
        ("Bearer", BadRequest, "malformed_authorization"),
        ("Bearer a b", BadRequest, "malformed_authorization"),
        ("Bearer a, Bearer b", BadRequest, "malformed_authorization"),
        ("Bearer tök", BadRequest, "malformed_authorization"),
        ("Bearer a\tb", BadRequest, "malformed_authorization"),
        ("Bearer " + "a" * 9000, BadRequest, "authorization_too_large"),
        ("Basic abc", AuthenticationError, "no_bearer_token"),
        (None, AuthenticationError, "no_bearer_token"),
        ("Bearer bst_123", AuthenticationError, "api_key_not_jwt"),
        ("Bearer abc", InvalidToken, "malformed"),
        ("Bearer a+b/c==", InvalidToken, "malformed"),
    ],
)
async def test_malformed_headers(
    auth: BearerAuthenticator, value: str | None, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error) as info:
        await auth.authenticate(req(value))
    assert info.value.reason == reason  # type: ignore[attr-defined]


async def test_extra_spaces_after_scheme_allowed(auth: BearerAuthenticator) -> None:
    # RFC 7235 §2.1: credentials = auth-scheme [ 1*SP ( token68 / ... ) ]
    assert (await auth.authenticate(req(f"Bearer   {es256()}"))).subject == "user-42"


async def test_issuer_chosen_by_iss(auth: BearerAuthenticator) -> None:
    token = es256(claims(iss=OTHER_ISS))
    assert (await auth.authenticate(req(f"Bearer {token}"))).issuer == OTHER_ISS
    hs = mint_jwt(OctKey.import_key(HS_SECRET.encode()), claims(iss="https://hs.example"), "HS256")
    assert (await auth.authenticate(req(f"Bearer {hs}"))).issuer == "https://hs.example"


async def test_unknown_issuer(auth: BearerAuthenticator) -> None:
    for iss in ("https://evil.example", None, 5):
        with pytest.raises(InvalidToken) as info:
            await auth.authenticate(req(f"Bearer {es256(claims(iss=iss))}"))
        assert info.value.reason == "unknown_issuer"


async def test_hs256_issuer_does_not_accept_other_issuers_tokens(
    auth: BearerAuthenticator,
) -> None:
    # iss picks the verifier; the HS256 verifier never sees an ES256 token and vice versa.
    hs_as_main = mint_jwt(OctKey.import_key(HS_SECRET.encode()), claims(), "HS256")
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req(f"Bearer {hs_as_main}"))
    assert info.value.reason == "alg_not_allowed"


async def test_route_issuer_restriction(auth: BearerAuthenticator) -> None:
    token = es256()
    request = req(f"Bearer {token}")
    assert (await auth.authenticate(request, frozenset({"main"}))).subject == "user-42"
    # Now cached: the restriction still applies on a cache hit.
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(request, frozenset({"other"}))
    assert info.value.reason == "issuer_not_allowed"
    assert (await auth.authenticate(request)).subject == "user-42"


async def test_cache_hit_skips_verification(
    auth: BearerAuthenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = req(f"Bearer {es256()}")
    first = await auth.authenticate(request)

    async def boom(*args: object) -> None:
        raise AssertionError("verified again")

    monkeypatch.setattr(BearerAuthenticator, "_verify", boom)
    assert await auth.authenticate(request) is first


async def test_cached_entry_does_not_outlive_exp(
    auth: BearerAuthenticator, clock: FakeClock
) -> None:
    request = req(f"Bearer {es256(claims(exp=NOW + 100))}")
    await auth.authenticate(request)
    clock.advance(100)  # the cache drops the entry exactly at exp ...
    principal = await auth.authenticate(request)  # ... full verification: within leeway
    assert principal.subject == "user-42"
    clock.advance(60)
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(request)
    assert info.value.reason == "expired"


async def test_revoked_jti_rejected_even_when_cached(
    auth: BearerAuthenticator, revocations: InMemoryRevocations
) -> None:
    request = req(f"Bearer {es256(claims(jti='j-7'))}")
    await auth.authenticate(request)
    revocations.revoke_jti("j-7", until=NOW + 600)
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(request)
    assert info.value.reason == "revoked"
    fresh = req(f"Bearer {es256(claims(jti='j-7', sub='x'))}")  # never cached
    with pytest.raises(InvalidToken):
        await auth.authenticate(fresh)


async def test_without_cache(clock: FakeClock) -> None:
    a = BearerAuthenticator.from_config([issuer()], clock=clock, cache_entries=0)
    request = req(f"Bearer {es256()}")
    assert (await a.authenticate(request)) == (await a.authenticate(request))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, 'Bearer realm="bastion"'),
        ("invalid_token", 'Bearer realm="bastion", error="invalid_token"'),
        ("invalid_request", 'Bearer realm="bastion", error="invalid_request"'),
        ("bad_signature", 'Bearer realm="bastion"'),  # a private reason never leaks
        ('x", foo="', 'Bearer realm="bastion"'),
    ],
)
def test_challenge(auth: BearerAuthenticator, error: str | None, expected: str) -> None:
    assert auth.challenge(error) == expected


@pytest.mark.parametrize("realm", ['a"b', "a\\b", "", "é", "x" * 65])
def test_realm_validated(realm: str) -> None:
    with pytest.raises(ValueError, match="realm"):
        BearerAuthenticator([], realm=realm)


def test_account_is_none(auth: BearerAuthenticator) -> None:
    assert auth.account(req(f"Bearer {es256()}")) is None


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with jwks_server() as state:
        yield state


async def test_jwks_issuer_through_authenticator(server: JwksServer, clock: FakeClock) -> None:
    a = BearerAuthenticator.from_config(
        [issuer(keys=None, jwks_url=server.url)], clock=clock, cache_entries=0
    )
    try:
        for _ in range(3):
            assert (await a.authenticate(req(f"Bearer {es256()}"))).key_id == EC_KID
        assert server.requests == 1
    finally:
        await a.aclose()


async def test_jwks_down_from_start_fails_closed(server: JwksServer, clock: FakeClock) -> None:
    server.stop()
    async with httpx.AsyncClient() as client:
        a = BearerAuthenticator.from_config(
            [issuer(keys=None, jwks_url=server.url)], clock=clock, http_client=client
        )
        with pytest.raises(Unavailable):
            await a.authenticate(req(f"Bearer {es256()}"))


async def test_two_configs_same_iss_different_audiences(clock: FakeClock) -> None:
    a = BearerAuthenticator.from_config(
        [issuer(name="a", audiences=["api://a"]), issuer(name="b", audiences=["api://b"])],
        clock=clock,
    )
    token = mint_jwt(EC_KEY, claims(aud="api://b"), "ES256", EC_KID)
    assert (await a.authenticate(req(f"Bearer {token}"))).subject == "user-42"
    with pytest.raises(InvalidToken) as info:
        await a.authenticate(req(f"Bearer {token}"), frozenset({"a"}))
    assert info.value.reason == "bad_audience"
    assert AUD not in {"api://a", "api://b"}
