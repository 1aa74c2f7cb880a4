"""Access tokens (RFC 9068 JWT profile, or opaque per client) and refresh tokens.

A JWT access token carries ``typ: at+jwt`` and ``iss sub aud client_id scope jti iat exp``
(plus ``auth_time acr amr roles`` when a user granted it; without a user ``sub`` is
``client:<client_id>``). An opaque token is 256 random bits with the ``bat_`` prefix;
only its HMAC is stored, with the same claims.
Refresh tokens are 256 random bits, stored as HMACs, one-time use (see ``_grants``).
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from authlib.oauth2.rfc6749 import InvalidScopeError

from bastion.oauth._context import OPAQUE_PREFIX, OAuthContext
from bastion.oauth._store import Issued, Owner
from bastion.oauth.clients import Client, GrantType, TokenFormat

ISSUED = "_bastion_issued"  # private key of the token dict, popped by save_token
# RFC 9068 §2.2: a token with no resource owner (client_credentials) names the client in
# ``sub``. The prefix keeps it apart from every username (usernames cannot contain ':'),
# so a client named like a user can never act as that user (RFC 9700 §4.15).
CLIENT_SUBJECT_PREFIX = "client:"


def client_subject(client_id: str) -> str:
    """The ``sub`` of a token issued to a client acting for itself."""
    return CLIENT_SUBJECT_PREFIX + client_id


class TokenFactory:
    """Authlib's token generator (``register_token_generator("default", ...)``)."""

    def __init__(self, ctx: OAuthContext) -> None:
        self.ctx = ctx

    def __call__(
        self,
        grant_type: str,
        client: Client,
        user: Owner | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        allowed = client.get_allowed_scope(scope)
        if allowed is None:
            raise InvalidScopeError()
        oauth = self.ctx.config.oauth
        ttl = expires_in or client.record.access_token_ttl or oauth.access_token_ttl_seconds
        now = int(self.ctx.clock())
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": self.ctx.issuer,
            "sub": user.subject if user is not None else client_subject(client.client_id),
            "aud": self.ctx.audience,
            "client_id": client.client_id,
            "scope": allowed,
            "jti": jti,
            "iat": now,
            "exp": now + ttl,
        }
        if user is not None:
            if user.auth_time is not None:
                claims["auth_time"] = user.auth_time
            if user.acr:
                claims["acr"] = user.acr
            if user.amr:
                claims["amr"] = list(user.amr)
            if user.roles:
                claims["roles"] = list(user.roles)
        issued = Issued(jti=jti, exp=now + ttl, claims=claims)
        if client.record.token_format is TokenFormat.OPAQUE:
            access_token = OPAQUE_PREFIX + secrets.token_urlsafe(32)
            issued.opaque_hash = self.ctx.grants.digest(access_token)
        else:
            access_token = self.ctx.keys.sign(claims, alg=oauth.access_token_alg, typ="at+jwt")
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access_token,
            "expires_in": ttl,
            "scope": allowed,
        }
        if (
            include_refresh_token
            and user is not None
            and client.check_grant_type(GrantType.REFRESH_TOKEN)
        ):
            refresh = secrets.token_urlsafe(32)
            issued.refresh_hash = self.ctx.grants.digest(refresh)
            token["refresh_token"] = refresh
        token[ISSUED] = issued
        return token


def new_family_id() -> str:
    return uuid.uuid4().hex
