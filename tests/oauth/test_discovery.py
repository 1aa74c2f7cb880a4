"""Discovery documents validate against Authlib's own RFC 8414 / OIDC Discovery models
and the JWKS publishes every current key."""

from __future__ import annotations

import httpx
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from bastion.gateway.runtime import Runtime


async def test_openid_configuration_is_valid_and_true(http: httpx.AsyncClient, issuer: str) -> None:
    response = await http.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    OpenIDProviderMetadata(doc).validate()
    assert doc["issuer"] == issuer
    assert doc["code_challenge_methods_supported"] == ["S256"]  # never "plain"
    assert doc["response_types_supported"] == ["code"]
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["request_uri_parameter_supported"] is False
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
        "device_authorization_endpoint",
        "pushed_authorization_request_endpoint",
    ):
        assert doc[name].startswith(issuer + "/oauth2/"), name


async def test_oauth_authorization_server_metadata_is_valid(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/.well-known/oauth-authorization-server")).json()
    AuthorizationServerMetadata(doc).validate()
    assert "userinfo_endpoint" not in doc


async def test_jwks_publishes_rs256_es256_eddsa_and_no_private_parts(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    keys = (await http.get("/.well-known/jwks.json")).json()["keys"]
    algs = {k["alg"] for k in keys}
    assert {"RS256", "ES256", "EdDSA"} <= algs
    for key in keys:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & key.keys()
        assert key["use"] == "sig"
        assert key["kid"]
