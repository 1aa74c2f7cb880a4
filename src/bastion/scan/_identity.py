"""Who the scanner acts as: identities from ``--auth`` and login recipes from ``--login``.

``--auth NAME=KIND:...``::

    bearer:TOKEN            Authorization: Bearer TOKEN
    apikey:HEADER:KEY       HEADER: KEY  (header:HEADER:VALUE is the same)
    basic:USER:PASSWORD     Authorization: Basic ...
    cookie:NAME=VALUE       Cookie: NAME=VALUE

``--login NAME=PATH?field=value&field=value[&token=$.json.path][&as=form]`` POSTs the
fields (JSON unless ``as=form``) to PATH on the target and takes the token from the JSON
path (default: the first of access_token, token, jwt, id_token), or the session cookie
when the reply sets one and carries no token. Values are percent-encoded like a query.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bastion.scan import _jwt

TOKEN_KEYS = ("access_token", "token", "jwt", "id_token", "accessToken", "auth_token")


class IdentityError(ValueError):
    """A malformed ``--auth`` or ``--login`` value (a usage error: exit 2)."""


@dataclass(frozen=True)
class LoginRecipe:
    path: str
    fields: dict[str, str]
    token_path: str | None = None
    form: bool = False

    @property
    def user_field(self) -> str | None:
        for name in self.fields:
            if any(k in name.lower() for k in ("user", "login", "email", "name")):
                return name
        return None

    @property
    def password_field(self) -> str | None:
        for name in self.fields:
            if "pass" in name.lower() or "pwd" in name.lower():
                return name
        return None

    @property
    def username(self) -> str | None:
        field_name = self.user_field
        return self.fields.get(field_name) if field_name else None

    @property
    def password(self) -> str | None:
        field_name = self.password_field
        return self.fields.get(field_name) if field_name else None

    def with_fields(self, **changes: str) -> LoginRecipe:
        return replace(self, fields={**self.fields, **changes})


@dataclass(frozen=True)
class Identity:
    """One set of credentials the scanner can present."""

    name: str
    kind: str  # bearer | header | basic | cookie
    value: str = ""
    header_name: str = "Authorization"
    username: str | None = None
    password: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    login: LoginRecipe | None = None
    admin: bool = False

    def headers(self) -> dict[str, str]:
        """The headers that carry this identity's credential."""
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {self.value}"}
        if self.kind == "basic":
            raw = f"{self.username}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if self.kind == "header":
            return {self.header_name: self.value}
        if self.kind == "cookie":
            return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        return {}

    def cookie_only(self) -> Identity | None:
        """The same user authenticated by its session cookie alone, if it has one."""
        if not self.cookies:
            return None
        return replace(self, kind="cookie", value="")

    @property
    def token(self) -> str | None:
        return self.value if self.kind == "bearer" else None

    @property
    def jwt(self) -> _jwt.Jwt | None:
        return _jwt.parse(self.value) if self.kind == "bearer" else None

    def secrets(self) -> list[str]:
        out = [self.value, self.password or "", *self.cookies.values()]
        if self.login and self.login.password:
            out.append(self.login.password)
        if self.kind == "basic":
            out.append(self.headers()["Authorization"].split(" ", 1)[1])
        return [s for s in out if s]

    def markers(self) -> set[str]:
        """Values that name this identity in a response body (for evidence)."""
        out = {self.name}
        if self.username:
            out.add(self.username)
        if self.login and self.login.username:
            out.add(self.login.username)
        token = self.jwt
        if token:
            for claim in ("sub", "username", "preferred_username", "email", "name"):
                value = token.payload.get(claim)
                if isinstance(value, str | int) and len(str(value)) >= 3:
                    out.add(str(value))
        return {m for m in out if len(m) >= 3}


def parse_auth(text: str) -> Identity:
    """Parse one ``--auth NAME=KIND:...`` value."""
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise IdentityError(f"--auth {text!r}: expected NAME=KIND:CREDENTIAL")
    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind == "bearer" and rest:
        return Identity(name, "bearer", rest)
    if kind in {"apikey", "header"}:
        header, _, value = rest.partition(":")
        if header and value:
            return Identity(name, "header", value, header_name=header)
    if kind == "basic":
        user, sep2, password = rest.partition(":")
        if user and sep2:
            return Identity(name, "basic", "", username=user, password=password)
    if kind == "cookie":
        cname, sep2, value = rest.partition("=")
        if cname and sep2:
            return Identity(name, "cookie", cookies={cname: value})
    raise IdentityError(
        f"--auth {name}=...: expected bearer:TOKEN, apikey:HEADER:KEY, basic:USER:PASSWORD "
        "or cookie:NAME=VALUE"
    )


def parse_login(text: str) -> tuple[str, LoginRecipe]:
    """Parse one ``--login NAME=PATH?field=value&...`` value."""
    name, sep, spec = text.partition("=")
    parts = urlsplit(spec)
    if not sep or not name or not parts.path.startswith("/") or parts.scheme or parts.netloc:
        raise IdentityError(f"--login {text!r}: expected NAME=/path?field=value&...")
    fields: dict[str, str] = {}
    token_path: str | None = None
    form = False
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "token":
            token_path = value
        elif key == "as":
            form = value.lower() == "form"
        else:
            fields[key] = value
    if not fields:
        raise IdentityError(
            f"--login {name}: give the credential fields, e.g. ?username=u&password=p"
        )
    return name, LoginRecipe(parts.path, fields, token_path, form)


def json_path(data: Any, path: str) -> Any:
    """A value by a simple JSON path (``$.a.b`` or ``a.b``; no filters)."""
    node = data
    for part in path.removeprefix("$").strip(".").split("."):
        if not part:
            continue
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def token_from(data: Any, path: str | None) -> str | None:
    """The token in a login reply, by the recipe's path or the usual key names."""
    if path:
        value = json_path(data, path)
        return value if isinstance(value, str) and value else None
    if isinstance(data, dict):
        for key in TOKEN_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
        for nested in data.values():
            if isinstance(nested, dict):
                found = token_from(nested, None)
                if found:
                    return found
    return None


def cookies_from(set_cookies: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for header in set_cookies:
        pair = header.split(";", 1)[0]
        name, sep, value = pair.partition("=")
        if sep and name.strip():
            out[name.strip()] = value.strip()
    return out
