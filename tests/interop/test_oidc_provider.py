"""panva's oidc-provider as a real external IdP in front of ``bastion serve``.

bastion knows the IdP only by its discovery URL. Tokens come from the IdP's own token
endpoint (client_credentials over plain HTTP, and the authorization-code + PKCE flow
through openid-client's ``rp.mjs``); each must pass or fail at the gateway for the
right reason, and the IdP going down must neither open the gateway nor drop the keys
it already has.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey

from bastion.tokens.mint import mint_jwt
from tests._deploy import make_deployment
from tests._procs import bastion_serve, demo_upstream
from tests._services import free_port
from tests.interop.conftest import Idp, NodePeers

pytestmark = pytest.mark.node

API = "https://api.bastion.test/"  # the audience (RFC 8707 resource) bastion accepts
SHORT = "https://api.bastion.test/short-lived"  # accepted too; 2-second tokens
OTHER = "https://other.example/"  # a resource the IdP serves, not bastion
CLIENT_ID = "orders-batch"
CLIENT_SECRET = "orders-batch-secret-0123456789abcdefghij"
REDIRECT_URI = "http://127.0.0.1:1/callback"


def idp_args(*extra: str) -> list[str]:
    return [
        f"--client-id={CLIENT_ID}",
        f"--client-secret={CLIENT_SECRET}",
        f"--redirect-uri={REDIRECT_URI}",
        f"--resource={API}",
        f"--resource={OTHER}",
        f"--ttl-for={SHORT}=2",
        "--roles=admin,reporter",
        *extra,
    ]


def issuer_entry(name: str, issuer: str, discovery_url: str, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "issuer": issuer,
        "discovery_url": discovery_url,
        "audiences": [API, SHORT],
        "algorithms": ["ES256", "RS256"],
        "roles_claim": "realm_access.roles",
        "leeway_seconds": 0,
        "jwks_min_refresh_seconds": 1,
    }
    entry.update(extra)
    return entry


def client_credentials(idp: Idp, resource: str = API, scope: str = "orders:read") -> str:
    response = httpx.post(
        idp.info["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": scope, "resource": resource},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    return str(body["access_token"])


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(text: str) -> dict[str, Any]:
        padded = text + "=" * (-len(text) % 4)
        decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
        return decoded

    header, payload, _ = token.split(".")
    return part(header), part(payload)


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def call(base: str, token: str, path: str = "/api/orders") -> httpx.Response:
    return httpx.get(base + path, headers={"authorization": f"Bearer {token}"}, timeout=10)


def wait_for_serve_log(folder: Path, text: str, seconds: float = 5.0) -> str:
    log = folder / "serve.log"
    deadline = time.monotonic() + seconds
    content = ""
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            break
        time.sleep(0.1)
    return content


@dataclass
class Stack:
    base: str
    idp: Idp
    folder: Path
    peers: NodePeers


@pytest.fixture(scope="module")
def stack(node_peers: NodePeers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("oidc-provider")
    with node_peers.idp(*idp_args()) as idp, demo_upstream() as upstream:
        port = free_port()
        # A second issuer whose configured ``iss`` differs from the document's by one
        # trailing slash: discovery pinning must refuse it.
        wrong = issuer_entry("pinned-wrong", idp.issuer + "/", idp.info["discovery_url"])
        issuers = [issuer_entry("oidc-provider", idp.issuer, idp.info["discovery_url"]), wrong]
        deployment = asyncio.run(
            make_deployment(
                folder,
                upstream,
                listen={"host": "127.0.0.1", "port": port},
                issuers=issuers,
            )
        )
        with bastion_serve(deployment.config_file, port) as base:
            yield Stack(base, idp, folder, node_peers)


def test_client_credentials_token_passes_with_mapped_identity(stack: Stack) -> None:
    token = client_credentials(stack.idp)
    header, claims = segments(token)
    assert header["typ"] == "at+jwt"  # RFC 9068, not an opaque token
    assert claims["aud"] == API
    response = call(stack.base, token)
    assert response.status_code == 200, response.text
    seen = response.json()["headers"]
    assert seen["x-bastion-issuer"] == stack.idp.issuer
    assert seen["x-bastion-subject"] == CLIENT_ID  # RFC 9068 §2.2: sub of a client grant
    assert seen["x-bastion-client"] == CLIENT_ID
    assert seen["x-bastion-credential"] == "jwt"
    assert seen["x-bastion-scopes"] == "orders:read"
    assert seen["x-bastion-roles"] == "admin reporter"  # realm_access.roles
    assert "authorization" not in seen


def test_scopes_and_nested_roles_authorize_routes(stack: Stack) -> None:
    token = client_credentials(stack.idp, scope="orders:read orders:write")
    assert call(stack.base, token, "/api/admin/users").status_code == 200  # role admin
    refused = call(stack.base, token, "/api/reports/q3")  # needs scope reports:read
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"


def test_openid_client_tokens_pass(stack: Stack) -> None:
    result = stack.peers.rp(
        f"--issuer={stack.idp.issuer}",
        f"--client-id={CLIENT_ID}",
        f"--client-secret={CLIENT_SECRET}",
        f"--redirect-uri={REDIRECT_URI}",
        f"--resource={API}",
        "--scope=openid orders:read",
        "--flow=client_credentials",
        "--flow=authorization_code",
        "--login=alice",
        "--allow-http",
    )
    assert "error" not in result, result
    assert result["discovery"]["issuer"] == stack.idp.issuer
    machine = call(stack.base, result["client_credentials"]["access_token"])
    assert machine.status_code == 200
    assert machine.json()["headers"]["x-bastion-subject"] == CLIENT_ID
    user = result["authorization_code"]
    assert user["id_token_claims"]["sub"] == "alice"  # openid-client checked the ID token
    # An ID token is not an access token: its audience is the client, not the API.
    assert call(stack.base, user["id_token"]).status_code == 401
    response = call(stack.base, user["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["headers"]["x-bastion-subject"] == "alice"
    assert response.json()["headers"]["x-bastion-client"] == CLIENT_ID


def test_token_for_another_audience_fails(stack: Stack) -> None:
    token = client_credentials(stack.idp, resource=OTHER)
    assert segments(token)[1]["aud"] == OTHER
    response = call(stack.base, token)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_token_signed_by_another_key_with_the_same_iss_and_kid_fails(stack: Stack) -> None:
    real = client_credentials(stack.idp)
    header, claims = segments(real)
    impostor = ECKey.generate_key("P-256", private=True)
    forged = mint_jwt(impostor, claims, "ES256", header["kid"], headers={"typ": "at+jwt"})
    assert segments(forged)[0]["kid"] == header["kid"]
    assert call(stack.base, forged).status_code == 401
    assert call(stack.base, real).status_code == 200


def test_tampered_tokens_fail(stack: Stack) -> None:
    real = client_credentials(stack.idp)
    head, payload, signature = real.split(".")
    claims = segments(real)[1]
    promoted = b64({**claims, "sub": "root", "scope": "orders:read reports:read"})
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for token in (f"{head}.{promoted}.{signature}", f"{head}.{payload}.{flipped}"):
        response = call(stack.base, token)
        assert response.status_code == 401
        assert "upstream" not in response.text


def test_expired_token_fails(stack: Stack) -> None:
    token = client_credentials(stack.idp, resource=SHORT)
    exp = segments(token)[1]["exp"]
    assert exp - segments(token)[1]["iat"] == 2
    assert call(stack.base, token).status_code == 200  # cached as verified until exp
    time.sleep(max(0.0, exp - time.time()) + 0.2)
    response = call(stack.base, token)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_issuer_mismatch_in_discovery_fails_closed(stack: Stack) -> None:
    # A token naming the wrongly pinned issuer: bastion must not trust the document.
    key = ECKey.generate_key("P-256", private=True)
    now = int(time.time())
    claims = {"iss": stack.idp.issuer + "/", "aud": API, "sub": "x", "iat": now, "exp": now + 60}
    response = call(stack.base, mint_jwt(key, claims, "ES256", "k"))
    assert response.status_code == 503
    assert response.json()["code"] == "temporarily_unavailable"
    log = wait_for_serve_log(stack.folder, "is not the configured")
    assert f"is not the configured '{stack.idp.issuer}/'" in log


def test_tokens_never_reach_the_logs(stack: Stack) -> None:
    token = client_credentials(stack.idp)
    assert call(stack.base, token).status_code == 200
    time.sleep(1.2)  # the audit log is flushed within a second
    for name in ("audit.log", "serve.log"):
        path = stack.folder / name
        text = path.read_text(errors="replace") if path.exists() else ""
        assert token.split(".")[2] not in text
        assert CLIENT_SECRET not in text


def test_idp_down_first_fails_closed_then_later_up_then_down_serves_cached_keys(
    node_peers: NodePeers, tmp_path: Path
) -> None:
    idp_port = free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    discovery = issuer + "/.well-known/openid-configuration"
    with demo_upstream() as upstream:
        port = free_port()
        deployment = asyncio.run(
            make_deployment(
                tmp_path,
                upstream,
                listen={"host": "127.0.0.1", "port": port},
                issuers=[issuer_entry("oidc-provider", issuer, discovery)],
            )
        )
        with bastion_serve(deployment.config_file, port) as base:
            # 1. The IdP has never answered: fail closed (503), never allow.
            key = ECKey.generate_key("P-256", private=True)
            now = int(time.time())
            claims = {"iss": issuer, "aud": API, "sub": "x", "iat": now, "exp": now + 60}
            early = call(base, mint_jwt(key, claims, "ES256", "k"))
            assert early.status_code == 503
            # 2. It comes up: the next attempt after the rate bound succeeds, no restart.
            with node_peers.idp(*idp_args(f"--port={idp_port}")) as idp:
                assert idp.issuer == issuer
                tokens = [client_credentials(idp) for _ in range(3)]
                time.sleep(1.1)  # jwks_min_refresh_seconds: 1
                assert call(base, tokens[0]).status_code == 200
            # 3. It goes down again: keys already fetched keep working.
            assert call(base, tokens[1]).status_code == 200
            kid_header, body = segments(tokens[2])
            time.sleep(1.1)
            unknown = mint_jwt(key, body, "ES256", "unknown-kid")  # forces a refetch
            assert call(base, unknown).status_code == 401
            log = wait_for_serve_log(tmp_path, "serving the last good key set")
            assert "serving the last good key set" in log
            assert call(base, tokens[2]).status_code == 200
            assert kid_header["kid"] != "unknown-kid"
