"""OpenID Connect Core 1.0 on Authlib's OpenIDCode/OpenIDToken: ID tokens signed with the
client's registered algorithm (RS256 by default, §15.1), with ``auth_time``, ``acr``,
``amr``, ``nonce`` and ``at_hash`` (§3.1.3.6), the standard claims of §5.4, and the
``id_token_hint`` of an authorization request (§3.1.2.1)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode, OpenIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from bastion.oauth._context import ACCESS_TOKEN_TYPES, ID_TOKEN_ALGS, OAuthContext
from bastion.oauth._store import Owner


def hinted_subject(ctx: OAuthContext, hint: str, client_id: str) -> str:
    """The ``sub`` of ``id_token_hint``: an ID token this server signed for ``client_id``.

    OIDC Core §3.1.2.1: the hint may have expired (``exp`` is not checked); it must be
    ours (signature and ``iss``), an ID token (not an access token) and meant for this
    client (``aud``).

    Raises:
        InvalidRequestError: the hint is not such a token.
    """
    try:
        keys = KeySet.import_key_set(ctx.keys.oauth_jwks())  # type: ignore[arg-type]
        token = jwt.decode(hint, keys, algorithms=list(ID_TOKEN_ALGS))
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidRequestError("id_token_hint is not a valid ID token") from exc
    claims = token.claims
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    sub = claims.get("sub")
    if (
        token.header.get("typ") in ACCESS_TOKEN_TYPES
        or claims.get("iss") != ctx.issuer
        or client_id not in audiences
        or not isinstance(sub, str)
        or not sub
    ):
        raise InvalidRequestError("id_token_hint is not an ID token of this client")
    return sub


def user_info(owner: Owner, scope: str) -> UserInfo:
    """The claims of ``owner`` that ``scope`` releases (OIDC Core §5.4)."""
    claims: dict[str, Any] = {"sub": owner.subject, "preferred_username": owner.subject}
    if owner.name:
        claims["name"] = owner.name
    if owner.email:
        claims["email"] = owner.email
        claims["email_verified"] = owner.email_verified
    info = UserInfo(claims).filter(scope)
    info["sub"] = owner.subject
    return info


class _IdTokenMixin:
    ctx: OAuthContext

    def resolve_client_private_key(self, client: Any) -> Key:
        return self.ctx.keys.signer(client.record.id_token_alg).key

    def get_client_algorithm(self, client: Any) -> str:
        return str(client.record.id_token_alg)

    def get_encode_header(self, client: Any) -> dict[str, str]:
        key = self.ctx.keys.signer(client.record.id_token_alg)
        return {"alg": key.alg, "kid": key.kid, "typ": "JWT"}

    def get_client_claims(self, client: Any) -> dict[str, Any]:
        now = int(self.ctx.clock())
        return {
            "iss": self.ctx.issuer,
            "aud": [client.client_id],
            "azp": client.client_id,
            "iat": now,
            "exp": now + self.ctx.config.oauth.id_token_ttl_seconds,
        }

    def get_compatible_claims(self, request: Any) -> dict[str, Any]:
        claims = self.get_client_claims(request.client)
        owner: Owner = request.user
        # The original authentication, also for ID tokens from a refresh (OIDC Core §12.2).
        if owner.auth_time is not None:
            claims["auth_time"] = owner.auth_time
        if owner.acr:
            claims["acr"] = owner.acr
        if owner.amr:
            claims["amr"] = list(owner.amr)
        return claims

    def generate_user_info(self, user: Owner, scope: str) -> UserInfo:
        return user_info(user, scope)


class CodeIdTokens(_IdTokenMixin, OpenIDCode):  # type: ignore[misc]
    """ID tokens for the authorization code grant (nonce from the authorization request)."""

    def __init__(self, ctx: OAuthContext) -> None:
        super().__init__(require_nonce=False)
        self.ctx = ctx

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False  # a nonce binds an ID token to the client's session; clients check it


class GrantIdTokens(_IdTokenMixin, OpenIDToken):  # type: ignore[misc]
    """ID tokens on refresh and device grants when ``openid`` is in scope."""

    def __init__(self, ctx: OAuthContext) -> None:
        self.ctx = ctx
