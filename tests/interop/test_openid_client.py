"""panva's openid-client (npm) as a real relying party against a running bastion.

``bastion serve`` runs the authorization server and the gateway; ``rp.mjs`` knows only
the issuer URL and the client's credentials. Every flow goes over HTTP: discovery,
authorization code + PKCE through bastion's login form and consent page, refresh with
rotation and reuse detection, client_credentials, the device flow (RFC 8628) with the
user's page submitted by the script, revocation and introspection through openid-client,
and each access token used on the gateway's ``/api``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests._procs import BASTION
from tests.interop.conftest import NodePeers
from tests.oauth._server import ServedBastion, served_bastion

pytestmark = pytest.mark.node

REDIRECT_URI = "http://127.0.0.1:1/callback"  # never reached: rp.mjs stops at the redirect
USER_SCOPES = "openid profile email offline_access read"
API = "/api/interop"


@dataclass
class Peer:
    srv: ServedBastion
    peers: NodePeers

    def rp(self, *args: str) -> dict[str, Any]:
        """Run ``rp.mjs`` against bastion as the served client; its JSON result."""
        return self.peers.rp(
            f"--issuer={self.srv.issuer}",
            f"--client-id={self.srv.client_id}",
            f"--client-secret={self.srv.client_secret}",
            f"--redirect-uri={REDIRECT_URI}",
            f"--login={self.srv.username}",
            f"--password={self.srv.password}",
            f"--api={API}",
            "--allow-http",
            *args,
        )

    def audit(self) -> list[dict[str, Any]]:
        log = self.srv.deployment.audit_log
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def peer(node_peers: NodePeers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    folder = tmp_path_factory.mktemp("openid-client")
    # No grace for a reused refresh token (the default 5 s would let the replay through)
    # and a 1 s device poll interval, so the test does not wait for the defaults.
    oauth = {"refresh_reuse_grace_seconds": 0, "device_poll_interval_seconds": 1}
    with served_bastion(folder, redirect_uris=[REDIRECT_URI], oauth=oauth) as srv:
        profile = [*BASTION, "users", "profile", srv.username, "--email", "alice@example.com",
                   "--email-verified", "--name", "Alice Liddell",
                   "--config", str(srv.deployment.config_file)]  # fmt: skip
        subprocess.run(profile, check=True, capture_output=True, timeout=60)
        yield Peer(srv, node_peers)


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert "error" not in result, json.dumps(result, indent=1)[:3000]
    return result


def test_discovery_is_accepted_by_openid_client(peer: Peer) -> None:
    found = ok(peer.rp("--flow=client_credentials", "--scope=read"))["discovery"]
    issuer = peer.srv.issuer
    assert found["issuer"] == issuer  # openid-client refuses a mismatching issuer itself
    assert found["token_endpoint"] == f"{issuer}/oauth2/token"
    assert found["device_authorization_endpoint"] == f"{issuer}/oauth2/device_authorization"
    assert found["revocation_endpoint"] == f"{issuer}/oauth2/revoke"
    assert found["introspection_endpoint"] == f"{issuer}/oauth2/introspect"


def test_client_credentials_introspected_used_and_revoked(peer: Peer) -> None:
    out = ok(peer.rp("--flow=client_credentials", "--scope=read", "--introspect", "--revoke"))[
        "client_credentials"
    ]
    assert out["token_type"].lower() == "bearer"
    assert out["scope"] == "read"
    assert "refresh_token" not in out
    client = peer.srv.client_id
    assert out["api"] == {"status": 200, "subject": f"client:{client}", "client": client}
    assert out["introspection"]["active"] is True
    assert out["introspection"]["client_id"] == client
    assert out["introspection"]["sub"] == f"client:{client}"  # never a username
    assert out["revoked"] is True
    assert out["api_after_revoke"]["status"] == 401
    assert 'error="invalid_token"' in out["api_after_revoke"]["www_authenticate"]
    assert out["introspection_after_revoke"] == {"active": False}


def test_authorization_code_with_pkce_login_and_consent(peer: Peer) -> None:
    result = ok(peer.rp("--flow=authorization_code", f"--scope={USER_SCOPES}",
                        "--auth-param=prompt=consent", "--userinfo", "--introspect",
                        "--revoke"))  # fmt: skip
    out = result["authorization_code"]
    # The browser part: bastion's login form and consent page, CSRF tokens included.
    assert "POST /oauth2/login -> 303" in out["steps"]
    assert "form csrf,tx,decision" in out["steps"]
    # The consent post is answered with a page that moves on to the client by itself.
    assert out["steps"][-2:] == ["POST /oauth2/consent -> 200", "meta refresh"]
    # openid-client verified the ID token's signature (non-repudiation checks on), iss,
    # aud, exp and the nonce; rp.mjs checked at_hash.
    claims = out["id_token_claims"]
    assert claims["iss"] == peer.srv.issuer
    assert claims["sub"] == "alice"
    assert claims["nonce"] == out["nonce"]
    assert claims["aud"] == [peer.srv.client_id]
    assert out["at_hash_ok"] is True
    assert claims["email"] == "alice@example.com"
    assert out["userinfo"] == {
        "sub": "alice", "preferred_username": "alice", "name": "Alice Liddell",
        "email": "alice@example.com", "email_verified": True}  # fmt: skip
    assert out["refresh_token"]
    assert out["api"] == {"status": 200, "subject": "alice", "client": peer.srv.client_id}
    assert out["introspection"]["active"] is True
    assert out["introspection"]["sub"] == "alice"
    assert out["api_after_revoke"]["status"] == 401
    assert out["introspection_after_revoke"] == {"active": False}
    # The refresh token was revoked too; refreshing with it is refused.
    assert out["refresh_after_revoke"]["oauth_error"] == "invalid_grant"


def test_refresh_rotates_and_reuse_kills_the_family(peer: Peer) -> None:
    result = ok(peer.rp("--flow=authorization_code", "--flow=refresh", f"--scope={USER_SCOPES}",
                        "--introspect"))  # fmt: skip
    first, out = result["authorization_code"], result["refresh"]
    assert out["rotated"] is True
    assert out["access_token"] != first["access_token"]
    assert out["id_token_claims"]["sub"] == "alice"
    assert out["id_token_claims"]["auth_time"] == first["id_token_claims"]["auth_time"]
    assert out["at_hash_ok"] is True
    assert out["api"]["status"] == 200
    assert out["introspection"]["active"] is True
    # The old refresh token again: refused, and the whole family with it.
    assert out["reuse"]["oauth_error"] == "invalid_grant"
    assert out["new_refresh_after_reuse"]["oauth_error"] == "invalid_grant"
    assert out["api_after_reuse"]["status"] == 401
    assert out["introspection_after_reuse"] == {"active": False}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = [e for e in peer.audit() if e.get("event") == "security_event"]
        if any(e.get("kind") == "refresh_token_reuse" for e in events):
            break
        time.sleep(0.1)
    else:
        pytest.fail("no refresh_token_reuse security event in the audit log")


def test_device_flow_with_the_user_on_bastions_page(peer: Peer) -> None:
    result = ok(peer.rp("--flow=device", f"--scope={USER_SCOPES}", "--userinfo", "--introspect",
                        "--revoke"))  # fmt: skip
    out = result["device"]
    assert out["verification_uri"] == f"{peer.srv.issuer}/oauth2/device"
    assert out["interval"] == 1
    # The user: signed in on bastion's login page, approved on the device page.
    assert "POST /oauth2/login -> 303" in out["steps"]
    assert "form csrf,user_code,decision" in out["steps"]
    assert out["page"]["status"] == 200
    assert "Return to your device." in out["page"]["text"]
    assert result["http"].count("POST /oauth2/device_authorization -> 200") == 1
    assert out["id_token_claims"]["sub"] == "alice"
    assert out["refresh_token"]
    assert out["userinfo"]["email"] == "alice@example.com"
    assert out["api"] == {"status": 200, "subject": "alice", "client": peer.srv.client_id}
    assert out["introspection"]["active"] is True
    assert out["api_after_revoke"]["status"] == 401
    assert out["introspection_after_revoke"] == {"active": False}


def test_device_flow_denied_by_the_user(peer: Peer) -> None:
    result = peer.rp("--flow=device", "--scope=read", "--field=decision=deny")
    out = result["partial"]["device"] if "partial" in result else result["device"]
    assert "The device was not given access." in out["page"]["text"]
    assert out["oauth_error"] == "access_denied"
    assert "access_token" not in out


def test_nothing_secret_in_the_audit_log(peer: Peer) -> None:
    result = ok(peer.rp("--flow=authorization_code", f"--scope={USER_SCOPES}"))
    out = result["authorization_code"]
    text = peer.srv.deployment.audit_log.read_text()
    for secret in (out["access_token"], out["refresh_token"], out["id_token"],
                   peer.srv.client_secret, peer.srv.password):  # fmt: skip
        assert secret not in text


def wrong_secret(peer: Peer, how: str) -> dict[str, Any]:
    srv = peer.srv
    return peer.peers.rp(
        f"--issuer={srv.issuer}", f"--client-id={srv.client_id}", "--client-secret=not-it",
        f"--client-auth={how}", "--flow=client_credentials", "--scope=read", "--allow-http",
    )  # fmt: skip


def test_a_wrong_client_secret_in_the_body_is_invalid_client_to_openid_client(
    peer: Peer,
) -> None:
    # RFC 6749 §5.2: a 401 with a challenge only to a client that used the Authorization
    # header. To one that sent its secret in the body a challenge made openid-client
    # report the HTTP challenge, never the error (issue 15).
    result = wrong_secret(peer, "post")
    assert result["http"][-1] == "POST /oauth2/token -> 400"
    assert result["oauth_error"] == "invalid_client", result
    assert result["error_description"] == "client authentication failed"
    # By the header: the challenge RFC 6749 §5.2 requires, which openid-client reports.
    by_header = wrong_secret(peer, "basic")
    assert by_header["http"][-1] == "POST /oauth2/token -> 401"
    assert by_header["code"] == "OAUTH_WWW_AUTHENTICATE_CHALLENGE"

    def audited() -> list[dict[str, Any]]:
        return [e for e in peer.audit() if e.get("event") == "client_auth_failed"]

    deadline = time.monotonic() + 5  # the audit log is flushed within a second
    while len(audited()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(e["client_id"], e["method"], e["reason"]) for e in audited()] == [
        (peer.srv.client_id, method, "bad_client_credentials")
        for method in ("client_secret_post", "client_secret_basic")
    ]
