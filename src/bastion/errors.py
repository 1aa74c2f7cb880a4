"""bastion's exception tree.

    BastionError                     the root; carries the wire code and HTTP status
    ├── ConfigError                  a bastion.yaml that does not validate (start-up only)
    ├── BadRequest                   400 malformed input (headers, encodings, sizes)
    │   ├── PayloadTooLarge          413
    │   └── HeadersTooLarge          431
    ├── AuthenticationError          401 no valid credential (RFC 6750 §3.1)
    │   ├── InvalidToken             401 a bearer token that fails verification
    │   ├── CredentialRefused        401 a credential sent in a way bastion refuses
    │   └── InsufficientUserAuthentication  401 RFC 9470 step-up needed
    ├── Forbidden                    403 authenticated but not allowed
    │   └── InsufficientScope        403 RFC 6750 §3.1 insufficient_scope
    ├── NotFound                     404 no route matches
    ├── MethodNotAllowed             405 TRACE, CONNECT, or a method the route does not take
    ├── RateLimited                  429 a limit is exhausted; carries retry-after
    ├── InternalError                500 a bug, denied (fail closed)
    └── Unavailable                  503 a dependency the decision needs is down (fail closed)

Each error has a public ``code`` and ``title`` that a client may see, and a private
``reason`` that only the audit log sees (cryptography's ``InvalidToken`` habit: the
client learns "invalid token", the log learns why).
"""

from __future__ import annotations

from typing import ClassVar


class BastionError(Exception):
    """Root of every error bastion raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "server_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, reason: str = "", *, detail: str | None = None) -> None:
        super().__init__(reason or self.code)
        self.reason = reason or self.code
        # ``detail`` is safe to show the client; ``reason`` never is.
        self.detail = detail


class ConfigError(BastionError):
    code = "config_error"
    title = "Invalid configuration"


class BadRequest(BastionError):
    status = 400
    code = "invalid_request"
    title = "Bad request"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class RequestTimeout(BadRequest):
    status = 408
    code = "request_timeout"
    title = "Request timeout"


class AuthenticationError(BastionError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class InvalidToken(AuthenticationError):
    code = "invalid_token"
    title = "Invalid credentials"


class CredentialRefused(AuthenticationError):
    """A credential presented in a way bastion never accepts (key in URL, Basic on plain HTTP)."""

    code = "invalid_request"
    title = "Credential refused"


class Forbidden(BastionError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    title = "Insufficient scope"


class NotFound(BastionError):
    status = 404
    code = "not_found"
    title = "Not found"


class RateLimited(BastionError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(
        self, reason: str = "", *, retry_after: int, headers: list[tuple[str, str]]
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.headers = headers


class Unavailable(BastionError):
    status = 503
    code = "temporarily_unavailable"
    title = "Service unavailable"


class HeadersTooLarge(BadRequest):
    status = 431
    code = "headers_too_large"
    title = "Request header fields too large"


class MethodNotAllowed(BastionError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class InsufficientUserAuthentication(AuthenticationError):
    """RFC 9470 §3: the token is valid but its authentication is too weak or too old."""

    code = "insufficient_user_authentication"
    title = "A stronger or more recent authentication is required"


class InternalError(BastionError):
    status = 500
    code = "server_error"
    title = "Internal error"
