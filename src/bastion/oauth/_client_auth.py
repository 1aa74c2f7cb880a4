"""Client authentication failures at the token, revocation, introspection, PAR and
device-authorization endpoints (RFC 6749 §2.3, §5.2): one answer for every cause,
audited with the cause.

Authlib answers an unknown client and a wrong secret differently ("The client does not
exist on this server." against a Python list of the methods tried), and with 401 and a
``WWW-Authenticate: Basic`` challenge whenever ``client_secret_basic`` is among the
methods, also to a client that sent its secret in the body. RFC 6749 §5.2 allows that
challenge only for a client that used the ``Authorization`` header; a client library
seeing it otherwise treats the answer as an HTTP challenge, not as ``invalid_client``
(openid-client does). Here every failure is ``invalid_client`` with one description: 401
and a Basic challenge when the client sent ``Authorization: Basic``, else 400. The audit
log learns the endpoint, the client id presented, the address and the cause.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from bastion.oauth._context import OAuthContext

DESCRIPTION = "client authentication failed"
_ID_MAX = 64  # client ids are at most this long (ClientRegistry); longer is logged cut


class ClientAuthFailed(InvalidClientError):  # type: ignore[misc]
    """RFC 6749 §5.2 ``invalid_client``, the same whatever failed."""

    def __init__(self, challenge: str | None) -> None:
        super().__init__(description=DESCRIPTION, status_code=401 if challenge else 400)
        self._challenge = challenge

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = OAuth2Error.get_headers(self)  # not Authlib's Basic
        if self._challenge is not None:
            headers.append(("WWW-Authenticate", self._challenge))
        return headers


def _used_basic(request: Any) -> bool:
    scheme = (request.headers.get("Authorization") or "").strip().partition(" ")[0]
    return scheme.lower() == "basic"


def _presented(request: Any) -> tuple[str, str]:
    """The client id the request named and how it tried to authenticate."""
    if _used_basic(request):
        client_id, _ = extract_basic_authorization(request.headers)
        return client_id or "", "client_secret_basic"
    form = request.form
    client_id = form.get("client_id") or ""
    if form.get("client_assertion"):
        return client_id, "private_key_jwt"
    if form.get("client_secret"):
        return client_id, "client_secret_post"
    return client_id, "none"


def failed(
    ctx: OAuthContext, query_client: Any, request: Any, endpoint: str, error: InvalidClientError
) -> ClientAuthFailed:
    """Audit one failed client authentication; the error to answer it with.

    ``query_client`` is asked whether the presented id exists (for the audit log only):
    it may raise :class:`~bastion.oauth._authlib.NeedsLoop` before anything is emitted.
    """
    client_id, method = _presented(request)
    if not client_id:
        reason = "no_client_id"
    elif query_client(client_id) is None:
        reason = "unknown_client"
    else:
        reason = "bad_client_credentials"  # wrong secret or assertion, or a method not its own
    http = getattr(request, "http", None)
    ctx.emit({
        "event": "client_auth_failed", "endpoint": endpoint, "client_id": client_id[:_ID_MAX],
        "method": method, "reason": reason, "detail": str(error.description)[:200],
        "client_ip": getattr(http, "client_ip", ""),
    })  # fmt: skip
    realm = ctx.config.basic.realm.replace("\\", "\\\\").replace('"', '\\"')
    return ClientAuthFailed(f'Basic realm="{realm}"' if _used_basic(request) else None)
