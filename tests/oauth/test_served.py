"""The authorization server under ``bastion serve`` (a real process): discovery, a token,
and the gateway accepting it — the same helper the npm interop peers use."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.oauth._server import served_bastion


def test_bastion_serve_runs_the_authorization_server(tmp_path: Path) -> None:
    with served_bastion(tmp_path / "srv") as srv:
        doc = httpx.get(f"{srv.issuer}/.well-known/openid-configuration").json()
        assert doc["issuer"] == srv.issuer
        token = httpx.post(doc["token_endpoint"], data={"grant_type": "client_credentials",
                                                        "scope": "read"},
                           auth=(srv.client_id, srv.client_secret))  # fmt: skip
        assert token.status_code == 200, token.text
        access = token.json()["access_token"]
        api = httpx.get(f"{srv.issuer}/api/x", headers={"Authorization": f"Bearer {access}"})
        assert api.status_code == 200
        assert api.json()["headers"]["x-bastion-client"] == "interop"
