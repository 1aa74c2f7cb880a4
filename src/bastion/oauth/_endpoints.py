"""Authlib's token-management endpoints over bastion's stores: revocation (RFC 7009),
introspection (RFC 7662), device authorization (RFC 8628 §3.1), RP-initiated logout."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import InvalidScopeError, UnauthorizedClientError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest

from bastion.oauth._context import OPAQUE_PREFIX, OAuthContext
from bastion.oauth._grants import ALL_METHODS, SECRET_METHODS
from bastion.oauth._tokens import CLIENT_SUBJECT_PREFIX
from bastion.oauth.clients import DEVICE_GRANT
from bastion.oauth.resource import OwnTokens


@dataclass
class TokenRef:
    """A token this server issued, as revocation and introspection see it."""

    kind: str  # "access_token" | "refresh_token"
    client_id: str
    exp: int
    claims: dict[str, Any] = field(default_factory=dict)
    jti: str | None = None
    family_id: str | None = None
    revoked: bool = False
    now: float = 0.0

    def check_client(self, client: Any) -> bool:
        return bool(client.client_id == self.client_id)

    def is_expired(self) -> bool:
        return self.exp <= self.now

    def is_revoked(self) -> bool:
        return self.revoked


async def resolve_token(ctx: OAuthContext, tokens: OwnTokens, token: str) -> TokenRef | None:
    """Find a token by value whatever the hint says (RFC 7009 §2.1: hints are only hints)."""
    if not token or len(token) > 8192:
        return None
    now = ctx.clock()
    claims: dict[str, Any] | None = None
    if token.startswith(OPAQUE_PREFIX):
        found = await tokens.opaque_claims(token)
        claims = None if found is None else found[0]
    elif token.count(".") == 2:
        claims = await tokens.signed_claims(token)
    if claims is not None:
        jti = claims.get("jti")
        exp = claims.get("exp")
        if not isinstance(jti, str) or not isinstance(exp, int):
            return None
        return TokenRef(
            kind="access_token",
            client_id=str(claims.get("client_id")),
            exp=exp,
            claims=claims,
            jti=jti,
            revoked=await ctx.grants.is_revoked(jti),
            now=now,
        )
    row = await ctx.grants.find_refresh(token)
    if row is None:
        return None
    exp = int(min(row.expires_at, row.idle_expires_at).timestamp())
    return TokenRef(
        kind="refresh_token",
        client_id=row.client_id,
        exp=exp,
        claims={
            "sub": row.subject,
            "scope": row.scope,
            "client_id": row.client_id,
            "iss": ctx.issuer,
        },
        family_id=row.family_id,
        revoked=row.revoked_at is not None or row.used_at is not None,
        now=now,
    )


class _TokenLookup:
    ctx: OAuthContext
    tokens: OwnTokens

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRef | None:
        return self.ctx.bridge.call(resolve_token, self.ctx, self.tokens, token_string)


class Revocation(_TokenLookup, RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Revoking a refresh token revokes its family and the access tokens issued
    with it (§2.1 SHOULD); revoking an access token adds its ``jti`` to the revoked list,
    which the gateway refuses on the next request."""

    CLIENT_AUTH_METHODS = ALL_METHODS

    def __init__(self, ctx: OAuthContext, tokens: OwnTokens) -> None:
        super().__init__()
        self.ctx = ctx
        self.tokens = tokens

    def revoke_token(self, token: TokenRef, request: Any) -> None:
        if token.kind == "access_token" and token.jti is not None:
            self.ctx.bridge.call(self.ctx.revocations.revoke, token.jti, token.exp)
        elif token.family_id is not None:
            revoked = self.ctx.bridge.call(self.ctx.grants.revoke_family, token.family_id)
            self.ctx.bridge.call(self.ctx.revocations.applied, revoked)
        self.ctx.emit(
            {
                "event": "token_revoked",
                "client_id": token.client_id,
                "kind": token.kind,
                "jti": token.jti,
                "refresh_family": token.family_id,
            }
        )


class Introspection(_TokenLookup, IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662, for authenticated confidential clients only (§2.1). A client may
    introspect its own tokens; a client registered with ``may_introspect`` (a resource
    server) any token."""

    CLIENT_AUTH_METHODS = SECRET_METHODS

    def __init__(self, ctx: OAuthContext, tokens: OwnTokens) -> None:
        super().__init__()
        self.ctx = ctx
        self.tokens = tokens

    def check_permission(self, token: TokenRef, client: Any, request: Any) -> bool:
        return bool(client.record.may_introspect or token.client_id == client.client_id)

    def introspect_token(self, token: TokenRef) -> dict[str, Any]:
        claims = {k: v for k, v in token.claims.items() if v is not None}
        claims["active"] = True
        claims["exp"] = token.exp
        claims["token_type"] = "Bearer" if token.kind == "access_token" else "refresh_token"
        sub = claims.get("sub")
        if isinstance(sub, str) and not sub.startswith(CLIENT_SUBJECT_PREFIX):
            claims.setdefault("username", sub)  # RFC 7662 §2.2: a human-readable owner
        return claims


class DeviceAuthorization(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    """RFC 8628 §3.1-3.2: the device asks for a device code and a user code."""

    CLIENT_AUTH_METHODS = ALL_METHODS

    def __init__(self, ctx: OAuthContext) -> None:
        super().__init__(None)  # register_endpoint sets the server
        self.ctx = ctx
        self.EXPIRES_IN = ctx.config.oauth.device_code_ttl_seconds
        self.INTERVAL = ctx.config.oauth.device_poll_interval_seconds

    def authenticate_client(self, request: Any) -> Any:
        client = super().authenticate_client(request)
        if not client.check_grant_type(DEVICE_GRANT):
            raise UnauthorizedClientError("the client may not use the device grant")
        scope = client.get_allowed_scope(request.payload.scope)
        if scope is None:
            raise InvalidScopeError()
        request.scope = scope
        return client

    def get_verification_uri(self) -> str:
        return self.ctx.url("/device")

    def generate_device_code(self) -> str:
        return secrets.token_urlsafe(32)

    def save_device_credential(
        self, client_id: str, scope: str | None, data: dict[str, Any]
    ) -> None:
        values = {
            "client_id": client_id,
            "scope": scope or "",
            "expires_at": self.ctx.grants.now() + timedelta(seconds=data["expires_in"]),
            "interval": data["interval"],
            "amr": [],
        }
        user_code = normalize_user_code(data["user_code"])
        self.ctx.bridge.call(self.ctx.grants.save_device, data["device_code"], user_code, values)


def normalize_user_code(text: str) -> str:
    """User codes are compared without case, spaces or dashes (RFC 8628 §6.1)."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


class EndSession(EndSessionEndpoint):  # type: ignore[misc]
    """OpenID Connect RP-Initiated Logout 1.0: ``id_token_hint`` verified against this
    server's keys; redirects only to a registered ``post_logout_redirect_uri``."""

    def __init__(self, ctx: OAuthContext) -> None:
        super().__init__()
        self.ctx = ctx

    def get_server_jwks(self) -> dict[str, Any]:
        return self.ctx.keys.oauth_jwks()

    def get_algorithms(self) -> list[str]:
        return ["RS256", "ES256", "EdDSA"]

    def resolve_client_from_id_token_claims(self, id_token_claims: dict[str, Any]) -> Any:
        # bastion's ID tokens carry ``aud`` as a one-element array (OIDC Core §2 allows both).
        aud = id_token_claims.get("aud")
        if isinstance(aud, list) and len(aud) == 1 and isinstance(aud[0], str):
            aud = aud[0]
        return self.server.query_client(aud) if isinstance(aud, str) else None

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        return None  # the HTTP layer deletes the browser session it holds
