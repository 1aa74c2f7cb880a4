"""The vulnerable lab API behind a hardened bastion gateway (``bastion serve``, a real
process): what bastion fixes in front of an API, and what it cannot know about.

Three vulnerable labs (HS256 with a strong key, RS256, ES256, each issuing tokens with
``aud``) sit behind one gateway, under ``/hs/``, ``/rs/`` and ``/es/``; each is also
scanned bare. The gateway trusts each lab's key for its own prefix, passes the
credential on (``forward_credentials``), and knows carol's API key (a bastion key the
lab also accepts). ``forwarded.trusted_proxies: []``: the scanner is a direct client.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bastion.config import parse_config
from bastion.errors import ConfigError
from bastion.scan import ScanConfig, ScanOptions, ScanResult, parse_auth, parse_login, run_scan
from bastion.scan.checks import ALL_CHECKS
from tests._deploy import make_deployment
from tests._procs import bastion_serve
from tests._services import free_port
from tests.scan._servers import ServerThread
from tests.scan.vulnapi import API, State, VulnConfig, make_app, public_jwk, spec

HS_KEY = secrets.token_bytes(32).hex().encode()  # strong: bastion refuses short HS256 keys
METHODS = ["GET", "POST", "PATCH", "PUT"]
TRACE_DEFAULT: list[Any] = []  # (response, marker) of a TRACE through a default route
PUBLIC = ("login", "password-reset", "register", "profiles", "products")
JWT_CHECKS = [c.id for c in ALL_CHECKS if c.id.startswith("jwt_")]
# Findings about authentication and the HTTP layer: a gateway in front must end them.
AUTH_LAYER = {
    "unauthenticated_access",
    "jwt_alg_none",
    "jwt_empty_hmac_key",
    "jwt_key_confusion",
    "jwt_header_injection",
    "jwt_kid_injection",
    "jwt_psychic_signature",
    "jwt_lifetime",
    "credential_in_url",
    "xff_bypass",
    "no_rate_limit",
    "security_headers",
    "version_disclosure",
    "trace_method",
    "exposed_docs",
}
# Flaws inside an authorized call: bastion cannot know them; still reported, as severe.
APPLICATION = {
    "bola",
    "bfla",
    "mass_assignment",
    "excessive_data_exposure",
    "sql_injection",
    # The app's own login, password and session logic behind a public route: bastion
    # verifies credentials it knows, not the app's login form or its logout.
    "brute_force",
    "user_enumeration",
    "password_change",
    "token_after_logout",
    "token_after_password_change",
}


def _prefixed(prefix: str, app: Any) -> Any:
    """The lab under ``prefix`` (the gateway forwards /hs/api/v2/... unchanged)."""

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(prefix + "/"):
            scope = {**scope, "path": scope["path"][len(prefix) :]}
            scope["raw_path"] = scope["path"].encode()
        await app(scope, receive, send)

    return wrapper


@dataclass
class Lab:
    name: str
    config: VulnConfig
    bare: ServerThread
    bare_state: State
    behind: ServerThread
    behind_state: State


def _labs() -> dict[str, Lab]:
    labs = {}
    for name, alg in (("hs", "HS256"), ("rs", "RS256"), ("es", "ES256")):
        config = VulnConfig(alg=alg, issuer=f"vulnapi-{name}", audience="vulnapi", hmac_key=HS_KEY)
        bare_app, bare_state = make_app(config)
        app, state = make_app(config)
        state.rsa_key, state.ec_key = bare_state.rsa_key, bare_state.ec_key  # one key pair
        labs[name] = Lab(
            name,
            config,
            ServerThread(bare_app).start(),
            bare_state,
            ServerThread(_prefixed(f"/{name}", app)).start(),
            state,
        )
    return labs


def _gateway_config(labs: dict[str, Lab], port: int) -> dict[str, Any]:
    issuers: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for name, lab in labs.items():
        issuer: dict[str, Any] = {
            "name": name,
            "issuer": lab.config.issuer,
            "audiences": ["vulnapi"],
            "algorithms": [lab.config.alg],
        }
        if lab.config.alg == "HS256":
            issuer["hs256_secret"] = HS_KEY.decode()
        else:
            issuer["keys"] = [public_jwk(lab.behind_state)]
        issuers.append(issuer)
        upstream = lab.behind.url.rstrip("/")
        base = f"/{name}{API}"
        routes += [
            {
                "name": f"{name}-{p}",
                "path_prefix": f"{base}/{p}",
                "upstream": upstream,
                "public": True,
                "methods": METHODS,
            }
            for p in PUBLIC
        ]
        routes.append(
            {
                "name": f"{name}-api",
                "path_prefix": base,
                "upstream": upstream,
                "auth": ["jwt", "api_key"],
                "issuers": [name],
                "forward_credentials": True,
                "methods": METHODS,  # hardening: only what the API uses (TRACE is refused)
            }
        )
    routes.append(
        {
            "name": "default",
            "path_prefix": "/default",
            "upstream": labs["hs"].behind.url.rstrip("/"),
            "public": True,
        }
    )
    return {
        "listen": {"host": "127.0.0.1", "port": port},
        "issuers": issuers,
        "routes": routes,
        "forwarded": {"trusted_proxies": []},
        # One scanner from one address: the failed-auth throttle would stop the scan
        # (that throttle is a defence too, but the checks below want every probe answered).
        "rate_limits": {
            "per_ip": "6000/minute",
            "per_principal": "6000/minute",
            "failed_auth_per_account": "100000/minute",
            "failed_auth_per_ip": "100000/minute",
        },
    }


def _scan(url: str, lab: Lab, carol_key: str, checks: list[str] | None) -> ScanResult:
    admin = httpx.post(
        url + API.lstrip("/") + "/login", json={"username": "admin", "password": "root-of-trust"}
    ).json()["access_token"]
    config = ScanConfig(
        base_url=url,
        identities=[
            parse_auth(f"admin=bearer:{admin}"),
            parse_auth(f"carol=apikey:X-API-Key:{carol_key}"),
        ],
        logins=[
            parse_login(f"alice={API}/login?username=alice&password=wonderland"),
            parse_login(f"bob={API}/login?username=bob&password=builder"),
        ],
        admins=["admin"],
        openapi_text=json.dumps(spec(lab.config)),
        checks=checks,
        rps=0,
        options=ScanOptions(jwt_secrets=(HS_KEY.decode(),)),
    )
    return asyncio.run(run_scan(config))


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ScanResult]]:
    labs = _labs()
    port = free_port()
    folder = tmp_path_factory.mktemp("gateway")
    overrides = _gateway_config(labs, port)
    deployment = asyncio.run(make_deployment(folder, labs["hs"].behind.url, **overrides))
    for lab in labs.values():  # carol's bastion API key is also hers in the lab
        for state in (lab.bare_state, lab.behind_state):
            state.db.execute(
                "UPDATE users SET api_key = ? WHERE username = 'carol'", (deployment.reports_key,)
            )
            state.db.commit()
    results = {}
    try:
        with bastion_serve(deployment.config_file, port) as gateway:
            for name, lab in labs.items():
                checks = None if name == "hs" else JWT_CHECKS
                results[f"bare_{name}"] = _scan(lab.bare.url, lab, deployment.reports_key, checks)
                results[f"gw_{name}"] = _scan(
                    f"{gateway}/{name}/", lab, deployment.reports_key, checks
                )
            # A route without a ``methods`` list (the default): TRACE goes to the upstream.
            marker = "trace-" + secrets.token_hex(6)
            TRACE_DEFAULT.append(
                httpx.request("TRACE", f"{gateway}/default/x", headers={"X-Scan-Trace": marker})
            )
            TRACE_DEFAULT.append(marker)
        yield results
    finally:
        for lab in labs.values():
            lab.bare.stop()
            lab.behind.stop()


def _checks(results: dict[str, ScanResult], side: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, result in results.items():
        if name.startswith(side):
            for f in result.findings:
                found.setdefault(f.check, []).append(f)
    return found


def test_the_gateway_ends_every_authentication_layer_finding(
    scans: dict[str, ScanResult],
) -> None:
    bare, behind = _checks(scans, "bare_"), _checks(scans, "gw_")
    assert set(bare) >= AUTH_LAYER, sorted(AUTH_LAYER - set(bare))
    leaked = {c: [(f.title, f.endpoint) for f in behind[c]] for c in AUTH_LAYER & set(behind)}
    assert leaked == {}


def test_application_flaws_are_still_reported_at_their_severity(
    scans: dict[str, ScanResult],
) -> None:
    bare, behind = _checks(scans, "bare_"), _checks(scans, "gw_")
    for check in APPLICATION:
        assert check in behind, check
        worst = max(f.severity for f in bare[check])
        assert max(f.severity for f in behind[check]) == worst, check


def test_scans_through_the_gateway_complete(scans: dict[str, ScanResult]) -> None:
    for name, result in scans.items():
        assert result.errors == {}, name
    # The JWT-only scans of the RS256 and ES256 labs find nothing behind bastion.
    assert scans["gw_rs"].findings == []
    assert scans["gw_es"].findings == []


def test_bastion_refuses_a_weak_hs256_secret() -> None:
    # Why jwt_weak_secret cannot occur behind bastion: the key must be >= 32 bytes.
    issuer = {"name": "x", "issuer": "x", "audiences": ["a"], "algorithms": ["HS256"]}
    with pytest.raises(ConfigError, match="32 bytes"):
        parse_config({"issuers": [{**issuer, "hs256_secret": "secret"}]})


def test_a_default_route_refuses_trace(scans: dict[str, ScanResult]) -> None:
    response, marker = TRACE_DEFAULT
    assert response.status_code in {405, 501}
    assert marker not in response.text
