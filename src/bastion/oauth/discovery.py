"""Authorization server metadata (RFC 8414) and OpenID Provider metadata (OIDC Discovery
1.0 §3), listing only what bastion really supports."""

from __future__ import annotations

from typing import Any

from bastion.oauth._context import ACR_PASSWORD, ID_TOKEN_ALGS, OAuthContext
from bastion.oauth._grants import ALL_METHODS, ASSERTION_ALGS, SECRET_METHODS
from bastion.oauth.clients import DEVICE_GRANT, OIDC_SCOPES

CLAIMS = (
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash",
    "name", "preferred_username", "email", "email_verified",
)  # fmt: skip


def metadata(ctx: OAuthContext, *, oidc: bool) -> dict[str, Any]:
    """The discovery document (``oidc`` adds the OpenID Provider members)."""
    url = ctx.url
    doc: dict[str, Any] = {
        "issuer": ctx.issuer,
        "authorization_endpoint": url("/authorize"),
        "token_endpoint": url("/token"),
        "jwks_uri": f"{ctx.issuer}/.well-known/jwks.json",
        "revocation_endpoint": url("/revoke"),
        "introspection_endpoint": url("/introspect"),
        "device_authorization_endpoint": url("/device_authorization"),
        "pushed_authorization_request_endpoint": url("/par"),
        "require_pushed_authorization_requests": False,
        "scopes_supported": list(dict.fromkeys([*OIDC_SCOPES, *ctx.config.oauth.scopes])),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            DEVICE_GRANT,
        ],
        "token_endpoint_auth_methods_supported": ALL_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": ALL_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": SECRET_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }
    if oidc:
        doc.update(
            {
                "userinfo_endpoint": url("/userinfo"),
                "end_session_endpoint": url("/logout"),
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGS),
                "claims_supported": list(CLAIMS),
                "acr_values_supported": [ACR_PASSWORD],
                "prompt_values_supported": ["none", "login", "consent", "select_account"],
                "claims_parameter_supported": False,
                "request_parameter_supported": False,
                "request_uri_parameter_supported": False,
            }
        )
    return doc
