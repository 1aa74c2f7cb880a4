"""The schema of ``bastion.yaml``, validated by pydantic, and its loader.

Only this module and the CLI read files or the environment; everything else receives a
frozen :class:`Config`. A bad file fails with the file, the field and what is wrong.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bastion._env import CONFIG_ENV, CONFIG_TEXT_ENV
from bastion.errors import ConfigError

RATE_RE = re.compile(
    r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day|month|year)s?\s*$", re.IGNORECASE
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_rate(value: str | None) -> str | None:
    if value is not None and not RATE_RE.match(value):
        raise ValueError(f"{value!r} is not a rate like '100/minute' or '10 per second'")
    return value


Rate = Annotated[str, Field(description="a rate such as '100/minute'")]


class TLSConfig(_Frozen):
    cert_file: Path
    key_file: Path
    min_version: Literal["1.2", "1.3"] = "1.2"  # TLS 1.0/1.1 are not offered at all


class Listener(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    tls: TLSConfig | None = None
    workers: int = Field(1, ge=1, le=64)
    # HTTP/2 (h2c by prior knowledge, h2 by ALPN): off by default, because granian then
    # reads a connection's first bytes to choose the protocol with no deadline, and a
    # connection that sends nothing is held until the client closes it (granian only).
    http2: bool = False


class StorageConfig(_Frozen):
    url: str = "sqlite:///bastion.db"
    # PostgreSQL: the longest a statement may take before the request fails (503).
    query_timeout_seconds: float = Field(10.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+asyncpg://")):
            raise ValueError("storage URL must start with sqlite:// or postgresql://")
        return value


class SecretsConfig(_Frozen):
    master_key_file: Path = Path("bastion.key")


class Algorithm(enum.StrEnum):
    """JWS algorithms bastion accepts. ``none`` is not a member, on purpose."""

    EDDSA = "EdDSA"
    ES256 = "ES256"
    RS256 = "RS256"
    PS256 = "PS256"
    HS256 = "HS256"


DEFAULT_ALGORITHMS = (Algorithm.EDDSA, Algorithm.ES256, Algorithm.RS256, Algorithm.PS256)


class IssuerConfig(_Frozen):
    """A token issuer the gateway trusts, with its keys from exactly one source.

    ``discovery_url`` names an OpenID Connect Discovery / RFC 8414 metadata document:
    its ``issuer`` must equal ``issuer`` exactly and its ``jwks_uri`` is then used as
    ``jwks_url`` would be.
    """

    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    issuer: str = Field(min_length=1)
    audiences: list[str] = Field(min_length=1)
    jwks_url: AnyHttpUrl | None = None
    discovery_url: AnyHttpUrl | None = None
    keys: list[dict[str, Any]] | None = None
    hs256_secret: SecretStr | None = None
    algorithms: list[Algorithm] = Field(default_factory=lambda: list(DEFAULT_ALGORITHMS))
    leeway_seconds: int = Field(60, ge=0, le=600)
    max_token_age_seconds: int | None = Field(None, ge=1)
    jwks_cache_seconds: int = Field(300, ge=10)
    jwks_min_refresh_seconds: int = Field(30, ge=1)
    scope_claims: list[str] = Field(default_factory=lambda: ["scope", "scp"])
    roles_claim: str = "roles"
    subject_claim: str = Field("sub", pattern=r"^[A-Za-z0-9_:.-]{1,64}$")

    @model_validator(mode="after")
    def _one_key_source(self) -> IssuerConfig:
        given = (self.jwks_url, self.discovery_url, self.keys, self.hs256_secret)
        if sum(s is not None for s in given) != 1:
            raise ValueError("give exactly one of jwks_url, discovery_url, keys or hs256_secret")
        if Algorithm.HS256 in self.algorithms and self.hs256_secret is None:
            raise ValueError("HS256 is allowed only with an explicitly configured hs256_secret")
        if self.hs256_secret is not None:
            if self.algorithms != [Algorithm.HS256]:
                raise ValueError("an issuer with hs256_secret must list algorithms: [HS256] only")
            if len(self.hs256_secret.get_secret_value().encode()) < 32:
                raise ValueError("hs256_secret must be at least 32 bytes")
        return self


class AuthMethod(enum.StrEnum):
    BASIC = "basic"
    API_KEY = "api_key"
    JWT = "jwt"


_ORIGIN = re.compile(r"https?://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?")


class RouteConfig(_Frozen):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    host: str | None = None
    path_prefix: str = "/"
    methods: list[str] | None = None
    upstream: AnyHttpUrl | None = None
    strip_prefix: bool = False
    public: bool = False
    auth: list[AuthMethod] = Field(default_factory=list)
    issuers: list[str] | None = None
    scopes: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    rate_limit: Rate | None = None
    assertion: bool = False
    forward_credentials: bool = False
    timeout_seconds: float = Field(30.0, gt=0, le=3600)
    # RFC 9470 step-up: the token must carry this ``acr`` (e.g. urn:bastion:acr:mfa) and
    # an ``auth_time`` no older than ``max_age`` seconds; otherwise 401
    # insufficient_user_authentication with acr_values/max_age in the challenge.
    acr: str | None = Field(None, pattern=r"^[\x21\x23-\x5b\x5d-\x7e]{1,255}$")
    max_age: int | None = Field(None, ge=0)
    # WebSocket handshakes (GET with Upgrade: websocket) are refused unless the route
    # accepts them; accepted ones are decided like any request and then re-checked
    # while open (see WebSocketConfig).
    websocket: bool = False
    # Browsers send cookies and cached Basic credentials with any page's WebSocket
    # handshake (cross-site WebSocket hijacking): when set, a handshake whose Origin is
    # not one of these (scheme://host[:port]) is refused; one without Origin (not a
    # browser) is decided as usual.
    websocket_origins: list[str] | None = None

    @field_validator("path_prefix")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path_prefix must start with '/'")
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        allowed = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
        upper = [m.upper() for m in value]
        bad = sorted(set(upper) - allowed)
        if bad:
            raise ValueError(f"unknown HTTP methods: {', '.join(bad)}")
        return upper

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        return _check_rate(value)

    @field_validator("websocket_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        lowered = [origin.lower() for origin in value]
        bad = [o for o, low in zip(value, lowered, strict=True) if not _ORIGIN.fullmatch(low)]
        if bad:
            raise ValueError(f"not an origin (scheme://host[:port]): {', '.join(bad)}")
        return lowered

    @model_validator(mode="after")
    def _auth_or_public(self) -> RouteConfig:
        if not self.public and not self.auth:
            raise ValueError("a route must list auth methods, or say public: true")
        if self.public and (self.scopes or self.roles):
            raise ValueError("a public route cannot require scopes or roles")
        if self.public and (self.acr is not None or self.max_age is not None):
            raise ValueError("a public route cannot require acr or max_age")
        if self.websocket_origins is not None and not self.websocket:
            raise ValueError("websocket_origins needs websocket: true")
        if self.websocket and self.methods is not None and "GET" not in self.methods:
            raise ValueError("a websocket route must allow GET (the handshake is a GET)")
        return self


class RateLimitConfig(_Frozen):
    per_ip: Rate | None = "600/minute"
    per_principal: Rate | None = "1200/minute"
    per_client: Rate | None = None
    per_api_key: Rate | None = None
    failed_auth_per_account: Rate = "10/minute"
    failed_auth_per_ip: Rate = "30/minute"
    strategy: Literal["fixed-window", "moving-window", "sliding-window-counter"] = (
        "sliding-window-counter"
    )
    # Per-address limits count an IPv6 client by its network of this length: one host
    # is usually given a whole /64 and could take a new address for every request.
    ipv6_prefix: int = Field(64, ge=32, le=128)

    @field_validator(
        "per_ip",
        "per_principal",
        "per_client",
        "per_api_key",
        "failed_auth_per_account",
        "failed_auth_per_ip",
    )
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        return _check_rate(value)


class InputLimits(_Frozen):
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    max_authorization_bytes: int = Field(8 * 1024, ge=256)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=0)
    # A request head (HTTP/1) must be whole this long after the connection opened or
    # the head's first byte; else the server closes the connection (slowloris).
    head_timeout_seconds: float = Field(30.0, ge=1, le=60)  # granian: at most 60 s
    # The longest wait for the next piece of a proxied request's body (nginx's
    # client_body_timeout): a body sent a byte now and then cannot hold the upstream.
    body_idle_seconds: float = Field(60.0, gt=0, le=3600)
    # The longest a proxied response waits for the client to take the next piece
    # (nginx's send_timeout): a client that stops reading cannot hold the upstream.
    send_idle_seconds: float = Field(60.0, gt=0, le=3600)


class WebSocketConfig(_Frozen):
    """Connections of routes with ``websocket: true`` (docs/websockets.md)."""

    # While a connection is open its credential is checked again this often (revoked
    # keys and tokens, disabled users, changed scopes): refused, the connection is
    # closed with 1008. It is closed when the credential expires, whatever this says.
    recheck_seconds: float = Field(60.0, ge=1, le=3600)
    # Closed (1001) when no message has passed either way for this long.
    idle_seconds: float = Field(300.0, gt=0, le=86400)
    # A message larger than this, either way, closes the connection (1009).
    max_message_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Open connections a worker holds at most (503 beyond), and from one client address
    # (an IPv6 client by its rate_limits.ipv6_prefix network; 429 beyond): each holds
    # file descriptors, and a handshake rate limit alone lets them pile up (nginx's
    # limit_conn).
    max_connections: int = Field(1024, ge=1, le=1_000_000)
    max_per_client: int = Field(64, ge=1, le=1_000_000)


class AuditConfig(_Frozen):
    path: str = "-"  # "-" is standard output


IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


class ForwardedConfig(_Frozen):
    """Which peers may tell bastion the client's address and the original request."""

    trusted_proxies: list[IPNet] = Field(
        default_factory=lambda: [
            ipaddress.ip_network("127.0.0.1/32"),
            ipaddress.ip_network("::1/128"),
        ]
    )
    # Which headers describe the original request to the forward-auth endpoint: the
    # nginx snippet's X-Original-Method/-URI, the X-Forwarded-Method/-Uri of Caddy,
    # Traefik and Envoy's headers_to_add, or the path after the endpoint (Envoy's
    # path_prefix form). ``auto`` takes whichever pair is present; with any setting a
    # request carrying both pairs is refused (a client sent one of them).
    original_request: Literal["auto", "x-original", "x-forwarded", "path"] = "auto"


class BasicConfig(_Frozen):
    realm: str = "bastion"
    allow_insecure_http: bool = False


class ApiKeyConfig(_Frozen):
    header: str = "X-API-Key"
    prefix: str = Field("bst_", pattern=r"^[a-z]{2,8}_$")
    cache_seconds: int = Field(30, ge=0, le=3600)


class IdentityConfig(_Frozen):
    header_prefix: str = Field("X-Bastion-", pattern=r"^[A-Za-z][A-Za-z0-9-]*-$")
    assertion_header: str = "X-Bastion-Assertion"
    assertion_ttl_seconds: int = Field(60, ge=5, le=3600)


class ResponseHeadersConfig(_Frozen):
    """Hardening of responses the gateway passes back from upstreams."""

    harden: bool = True  # nosniff, frame-ancestors 'none', no-store when the upstream set none
    hsts_max_age: int = Field(31536000, ge=0)  # on HTTPS responses; 0 turns HSTS off
    strip: list[str] = Field(
        default_factory=lambda: [
            "server",
            "x-powered-by",
            "x-aspnet-version",
            "x-aspnetmvc-version",
        ]
    )


class SystemConfig(_Frozen):
    forward_auth_path: str = "/_bastion/auth"
    metrics_allow: list[IPNet] = Field(
        default_factory=lambda: [
            ipaddress.ip_network("127.0.0.1/32"),
            ipaddress.ip_network("::1/128"),
        ]
    )


class LoginProviderConfig(_Frozen):
    """An external OpenID provider offered as a button on the login page (docs/mfa.md)."""

    name: str = Field(pattern=r"^[a-z0-9-]{1,32}$")  # in URLs: /oauth2/login/external/<name>
    display_name: str = Field(min_length=1, max_length=64)
    issuer: str = Field(min_length=1)  # must equal the discovery document's issuer
    discovery_url: AnyHttpUrl | None = None  # default: <issuer>/.well-known/openid-configuration
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    # Sign in a local user whose verified email equals the provider's verified email.
    link_by_email: bool = True


class OAuthConfig(_Frozen):
    """The authorization server (OAuth 2.1 + OpenID Connect); see docs/oauth.md."""

    enabled: bool = True
    # ``aud`` of the access tokens bastion issues; default: the issuer URL.
    audience: str | None = None
    access_token_alg: Literal["ES256", "RS256", "EdDSA"] = "ES256"  # noqa: S105 - an algorithm
    access_token_ttl_seconds: int = Field(600, ge=30, le=86400)
    id_token_ttl_seconds: int = Field(600, ge=30, le=86400)
    refresh_token_ttl_seconds: int = Field(30 * 86400, ge=60)  # absolute, per family
    refresh_token_idle_seconds: int = Field(7 * 86400, ge=60)  # unused this long: expired
    refresh_reuse_grace_seconds: int = Field(5, ge=0, le=60)  # concurrent refresh allowance
    code_ttl_seconds: int = Field(60, ge=5, le=60)
    device_code_ttl_seconds: int = Field(600, ge=60, le=3600)
    device_poll_interval_seconds: int = Field(5, ge=1, le=60)
    par_ttl_seconds: int = Field(60, ge=5, le=600)
    session_ttl_seconds: int = Field(8 * 3600, ge=60)  # absolute, from the login
    session_idle_seconds: int = Field(3600, ge=60)  # without a page load
    # Changing the password, enrolling or removing a factor, creating API keys: MFA no
    # older than this (or, for a user with no second factor yet, a fresh password).
    recent_mfa_seconds: int = Field(300, ge=30, le=86400)
    # Country of public addresses in the sign-in activity, from geoip2fast's embedded
    # data (loaded on first use; ~40 MB resident, so off by default).
    geoip: bool = False
    # ``None``: ``__Host-`` + Secure cookies exactly when the issuer URL is https.
    secure_cookies: bool | None = None
    client_cache_seconds: int = Field(10, ge=0, le=3600)
    revocation_sync_seconds: float = Field(2.0, gt=0, le=300)
    key_publish_ahead_seconds: int = Field(3600, ge=0)
    scopes: list[str] = Field(default_factory=list)  # API scopes offered besides OIDC's
    admin_role: str = "admin"
    login_providers: list[LoginProviderConfig] = Field(default_factory=list)

    @field_validator("scopes")
    @classmethod
    def _scope_tokens(cls, value: list[str]) -> list[str]:
        for scope in value:
            # RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", scope):
                raise ValueError(f"{scope!r} is not a valid scope token")
        return value


class Config(_Frozen):
    """The whole of ``bastion.yaml``."""

    # How clients reach bastion (the ``iss`` of what it signs); default from ``listen``.
    public_url: AnyHttpUrl | None = None
    listen: Listener = Field(default_factory=Listener)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    redis_url: str | None = None
    # Prefix of every Redis key and pub/sub channel bastion uses: deployments sharing one
    # Redis need different ones (a db number in the URL does not separate pub/sub).
    redis_namespace: str = Field("bastion", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    issuers: list[IssuerConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    limits: InputLimits = Field(default_factory=InputLimits)
    websockets: WebSocketConfig = Field(default_factory=WebSocketConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    forwarded: ForwardedConfig = Field(default_factory=ForwardedConfig)
    basic: BasicConfig = Field(default_factory=BasicConfig)
    api_keys: ApiKeyConfig = Field(default_factory=ApiKeyConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    response_headers: ResponseHeadersConfig = Field(default_factory=ResponseHeadersConfig)
    system: SystemConfig = Field(default_factory=SystemConfig)
    oauth: OAuthConfig = Field(default_factory=OAuthConfig)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _cross_refs(self) -> Config:
        names = [i.name for i in self.issuers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate issuer names: {', '.join(dupes)}")
        route_names = [r.name for r in self.routes]
        dupes = sorted({n for n in route_names if route_names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate route names: {', '.join(dupes)}")
        for route in self.routes:
            for issuer in route.issuers or []:
                if issuer not in names:
                    raise ValueError(f"route {route.name!r} names unknown issuer {issuer!r}")
        return self

    @property
    def issuer_url(self) -> str:
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        scheme = "https" if self.listen.tls else "http"
        host = self.listen.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.listen.port}"

    @property
    def oauth_audience(self) -> str:
        """The ``aud`` of bastion's own access tokens."""
        return self.oauth.audience or self.issuer_url

    def resolve(self, path: Path) -> Path:
        """A path from the config, relative to the config file's folder."""
        return path if path.is_absolute() else self.base_dir / path

    @property
    def database_url(self) -> str:
        url = self.storage.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url.removeprefix("sqlite:///")
            if rel and rel != ":memory:":
                return "sqlite:///" + str(self.resolve(Path(rel)).resolve())
        return url


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    for err in exc.errors(include_url=False, include_input=False):
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {_location(err['loc'])}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any, *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate already-parsed YAML; raise :class:`ConfigError` with a readable message."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of settings")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None
    if base_dir is not None:
        config = config.model_copy(update={"base_dir": base_dir})
    return config


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The text of a ``bastion.yaml``; ConfigError when it cannot be read."""
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file (run 'bastion init' to write one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None


def load_config(path: str | os.PathLike[str], text: str | None = None) -> Config:
    """Read and validate a ``bastion.yaml`` (``text``: its content, already read; relative
    paths in it are still taken from the file's folder)."""
    file = Path(path)
    if text is None:
        text = read_config_text(file)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{file}:{where}: {problem}") from None
    return parse_config(data, source=str(file), base_dir=file.resolve().parent)


def config_from_env() -> Config:
    """The config ``bastion serve`` handed this process (see ``CONFIG_TEXT_ENV``)."""
    path = os.environ.get(CONFIG_ENV, "bastion.yaml")
    return load_config(path, os.environ.get(CONFIG_TEXT_ENV))
