"""Authlib's grants with bastion's storage and its stricter rules.

* RFC 6749 §4.1 + RFC 7636: PKCE is required of every client, ``S256`` only, compared in
  constant time; ``redirect_uri`` is required and matched exactly; a code lives at most
  ``oauth.code_ttl_seconds`` (≤ 60 s) and is claimed atomically; a second use revokes
  what the first issued (§4.1.2).
* RFC 6749 §6 + RFC 9700 §4.14.2: refresh tokens rotate on every use; a used token
  presented again after ``oauth.refresh_reuse_grace_seconds`` revokes its whole family and
  raises a ``security_event``; families have an absolute and an idle lifetime.
* RFC 8628: device codes are single use; polling faster than ``interval`` is ``slow_down``.
* RFC 7523 §3: ``private_key_jwt`` assertions have a ``jti`` that may be used once.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
)
from authlib.oauth2.rfc6749 import grants as rfc6749
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge
from authlib.oauth2.rfc8628 import (
    AuthorizationPendingError,
    ExpiredTokenError,
    SlowDownError,
)
from authlib.oauth2.rfc8628 import DeviceCodeGrant as _DeviceCodeGrant
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bastion.oauth._context import OAuthContext
from bastion.oauth._store import CodeRow, DeviceRow, Owner, RefreshRow
from bastion.oauth._tokens import ISSUED, new_family_id

SECRET_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ALL_METHODS = [*SECRET_METHODS, "none"]
ASSERTION_ALGS = ["RS256", "PS256", "ES256", "EdDSA"]


def _ctx(grant: Any) -> OAuthContext:
    ctx: OAuthContext = grant.server.ctx
    return ctx


def _s256_matches(verifier: str, challenge: str) -> bool:
    return hmac.compare_digest(create_s256_code_challenge(verifier), challenge)


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE, required for every client, S256 only (RFC 9700 §2.1.1; OAuth 2.1)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": _s256_matches}

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9) with jti replay protection."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, ctx: OAuthContext) -> None:
        super().__init__(validate_jti=True, leeway=60)
        self.ctx = ctx

    def get_audiences(self) -> list[str]:
        # The issuer, the token endpoint and the other endpoints a client authenticates to.
        return [self.ctx.issuer, *(self.ctx.url(p) for p in _AUTH_ENDPOINTS)]

    def resolve_client_public_key(self, client: Any) -> KeySet:
        jwks: Any = client.record.jwks or {"keys": []}
        return KeySet.import_key_set(jwks)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        from authlib.oauth2.rfc6749 import InvalidClientError

        try:  # an explicit algorithm allow-list; never HS* or none for client assertions
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGS)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidClientError(description="invalid client assertion") from exc
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        exp = claims.get("exp")
        if not isinstance(jti, str) or not jti or not isinstance(exp, int | float):
            return False
        return self.ctx.bridge.call(self.ctx.grants.first_use_of_jti, claims["sub"], jti, exp)


_AUTH_ENDPOINTS = ("/token", "/par", "/revoke", "/introspect", "/device_authorization")


class CodeGrant(rfc6749.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: Any) -> str:
        uri = request.payload.redirect_uri
        if not uri:
            raise InvalidRequestError("Missing 'redirect_uri'")
        if not client.check_redirect_uri(uri):
            # RFC 6749 §4.1.2.1: never redirect to an unregistered URI (and never echo it).
            raise InvalidRequestError("redirect_uri is not registered for this client")
        return str(uri)

    def save_authorization_code(self, code: str, request: Any) -> None:
        ctx = _ctx(self)
        owner: Owner = request.user
        data = request.payload.data
        values = {
            "client_id": request.client.client_id,
            "subject": owner.subject,
            "redirect_uri": request.payload.redirect_uri,
            "scope": request.scope or "",
            "nonce": data.get("nonce"),
            "code_challenge": data["code_challenge"],
            "auth_time": owner.auth_time or int(ctx.clock()),
            "acr": owner.acr,
            "amr": list(owner.amr),
        }
        ctx.bridge.call(ctx.grants.save_code, code, values, ctx.config.oauth.code_ttl_seconds)

    def query_authorization_code(self, code: str, client: Any) -> CodeRow | None:
        ctx = _ctx(self)
        if not isinstance(code, str) or len(code) > 512:
            return None
        row, revoked = ctx.bridge.call(ctx.grants.claim_code, code, client.client_id)
        if revoked is not None:
            ctx.bridge.call(ctx.revocations.applied, revoked)
            ctx.security_event("authorization_code_reuse", client_id=client.client_id)
        return row

    def delete_authorization_code(self, authorization_code: CodeRow) -> None:
        return None  # claimed (marked used) atomically by query_authorization_code

    def authenticate_user(self, authorization_code: CodeRow) -> Owner | None:
        ctx = _ctx(self)
        return ctx.bridge.call(
            _owner,
            ctx,
            authorization_code.subject,
            authorization_code.auth_time,
            authorization_code.acr,
            authorization_code.amr,
        )


async def _owner(
    ctx: OAuthContext, subject: str, auth_time: int | None, acr: str | None, amr: tuple[str, ...]
) -> Owner | None:
    return await ctx.grants.owner(subject, auth_time=auth_time, acr=acr, amr=tuple(amr))


class RefreshGrant(rfc6749.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation on every use

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRow | None:
        ctx = _ctx(self)
        if not isinstance(refresh_token, str) or len(refresh_token) > 512:
            return None
        row: RefreshRow | None = ctx.bridge.call(ctx.grants.find_refresh, refresh_token)
        if row is None or row.revoked_at is not None:
            return None
        now = ctx.grants.now()
        if row.used_at is not None:
            grace = timedelta(seconds=ctx.config.oauth.refresh_reuse_grace_seconds)
            if now - row.used_at > grace:
                revoked = ctx.bridge.call(ctx.grants.revoke_family, row.family_id)
                ctx.bridge.call(ctx.revocations.applied, revoked)
                ctx.security_event(
                    "refresh_token_reuse",
                    client_id=row.client_id,
                    subject=row.subject,
                    family=row.family_id,
                )
                raise InvalidGrantError("refresh token already used; its family is revoked")
        if now >= row.expires_at or now >= row.idle_expires_at:
            return None
        return row

    def authenticate_user(self, refresh_token: RefreshRow) -> Owner:
        ctx = _ctx(self)
        owner = ctx.bridge.call(
            _owner,
            ctx,
            refresh_token.subject,
            refresh_token.auth_time,
            refresh_token.acr,
            refresh_token.amr,
        )
        if owner is None:
            raise InvalidGrantError("the user is no longer active")
        return owner

    def revoke_old_credential(self, refresh_token: RefreshRow) -> None:
        ctx = _ctx(self)
        ctx.bridge.call(ctx.grants.use_refresh, refresh_token)


class ClientCredentialsGrant(rfc6749.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS


class DeviceCredential:
    """Authlib's device credential over a stored row."""

    def __init__(self, row: DeviceRow) -> None:
        self.row = row

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_scope(self) -> str:
        return self.row.scope


class DeviceGrant(_DeviceCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS

    def query_device_credential(self, device_code: str) -> DeviceCredential:
        ctx = _ctx(self)
        row = (
            ctx.bridge.call(ctx.grants.find_device, device_code) if len(device_code) < 512 else None
        )
        if row is None or row.used_at is not None:
            raise InvalidGrantError("unknown or used device_code")
        return DeviceCredential(row)

    def validate_device_credential(self, credential: DeviceCredential) -> Owner:
        ctx = _ctx(self)
        outcome, row = ctx.bridge.call(ctx.grants.poll_device, credential.row)
        if outcome == "expired":
            raise ExpiredTokenError()
        if outcome == "pending":
            raise AuthorizationPendingError()
        if outcome == "slow_down":
            raise SlowDownError()
        if outcome == "denied":
            raise AccessDeniedError()
        if outcome == "used" or row.subject is None:
            raise InvalidGrantError("device_code already used")
        owner = ctx.bridge.call(_owner, ctx, row.subject, row.auth_time, None, row.amr)
        if owner is None:
            raise InvalidGrantError("the user is no longer active")
        return owner


def save_token(ctx: OAuthContext, token: dict[str, Any], request: Any) -> None:
    """Authlib's ``save_token``: persist what must be (opaque token, refresh token, the
    code's issue record) in one transaction; a plain JWT with no refresh token needs none."""
    issued = token.pop(ISSUED)
    client = request.client
    owner: Owner | None = request.user
    previous: RefreshRow | None = request.refresh_token
    code: CodeRow | None = request.authorization_code
    oauth = ctx.config.oauth
    family = None
    scope = token.get("scope", "")
    if issued.refresh_hash is not None:
        if previous is not None:
            family = (previous.family_id, previous.expires_at)
            scope = previous.scope  # RFC 6749 §6: the new refresh token keeps the scope
        else:
            ttl = client.record.refresh_token_ttl or oauth.refresh_token_ttl_seconds
            family = (new_family_id(), ctx.grants.now() + timedelta(seconds=ttl))
    if issued.opaque_hash or issued.refresh_hash or code is not None:
        ctx.bridge.call(
            _save,
            ctx,
            issued,
            client.client_id,
            owner,
            scope,
            family,
            code.code_hash if code is not None else None,
        )
    ctx.emit(
        {
            "event": "token_issued",
            "client_id": client.client_id,
            "subject": issued.claims.get("sub"),
            "jti": issued.jti,
            "scope": token.get("scope", ""),
            "refresh_family": family[0] if family else None,
        }
    )


async def _save(
    ctx: OAuthContext,
    issued: Any,
    client_id: str,
    owner: Owner | None,
    scope: str,
    family: Any,
    code_hash: str | None,
) -> None:
    await ctx.grants.save_issued(
        issued,
        client_id=client_id,
        owner=owner,
        scope=scope,
        family=family,
        idle_seconds=ctx.config.oauth.refresh_token_idle_seconds,
        code_hash=code_hash,
    )
