"""What every check receives: the target, the API's operations, the identities, helpers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import httpx

from bastion.scan._canary import Canary
from bastion.scan._errors import DryRun
from bastion.scan._identity import Identity, LoginRecipe, cookies_from, token_from
from bastion.scan._jwt import AttackerKey
from bastion.scan._model import Evidence, Finding
from bastion.scan._openapi import ApiSpec, Operation
from bastion.scan._redact import Redactor
from bastion.scan._target import Exchange, Target

EXCERPT = 1200
_SELF_PATH = re.compile(r"/(me|whoami|self|profile|account|userinfo|current[_-]?user)/?$", re.I)
_ID_KEYS = ("id", "user_id", "userId", "uid", "sub", "username", "login", "email", "name")
COMMON_SELF_PATHS = (
    "/me",
    "/api/me",
    "/users/me",
    "/api/users/me",
    "/user",
    "/whoami",
    "/userinfo",
)


@dataclass(frozen=True)
class ScanOptions:
    """The scan's knobs that checks read (the CLI builds it)."""

    allow_unsafe: bool = False
    jwt_wordlist: tuple[str, ...] = ()
    jwt_secrets: tuple[str, ...] = ()  # HMAC keys the user knows (own staging systems)
    ca_bundle: str | None = None
    http_ports: tuple[int, ...] = (80,)
    brute_force_attempts: int = 10
    burst_size: int = 40


def leaves(data: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted key, scalar) for every scalar in a JSON document."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        for item in data[:200]:
            yield from leaves(item, prefix + "[]")
    else:
        yield prefix, data


@dataclass
class Profile:
    """What the identity endpoint says about one identity."""

    path: str
    body: Any
    markers: set[str] = field(default_factory=set)
    own_id: str | None = None


class ScanContext:
    """Shared state of one scan; the only way a check reaches the network is ``send``."""

    def __init__(
        self,
        target: Target,
        spec: ApiSpec,
        identities: list[Identity],
        options: ScanOptions,
        canary: Canary,
        redactor: Redactor,
    ) -> None:
        self.target = target
        self.spec = spec
        self.identities = identities
        self.options = options
        self.canary = canary
        self.redactor = redactor
        self.findings: list[Finding] = []
        self.state: dict[str, Any] = {}
        self._cache: dict[tuple[str, str, str], Exchange | None] = {}
        self._profiles: dict[str, Profile] | None = None
        self._profile_lock = asyncio.Lock()
        self._attacker: AttackerKey | None = None

    # ----------------------------------------------------------------- plumbing
    def report(self, finding: Finding) -> None:
        if all(f.id != finding.id for f in self.findings):
            self.findings.append(finding)

    @property
    def attacker_key(self) -> AttackerKey:
        if self._attacker is None:
            self._attacker = AttackerKey()
        return self._attacker

    async def send(
        self,
        method: str,
        path: str,
        *,
        identity: Identity | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Exchange | None:
        """One request through the Target; None when the network failed (not a finding).

        In a dry run the request is recorded and None comes back, so a check goes on to
        list every later probe that does not depend on an answer.
        """
        merged = dict(identity.headers()) if identity else {}
        merged.update(headers or {})
        try:
            return await self.target.request(method, path, headers=merged, **kwargs)
        except (httpx.HTTPError, DryRun):
            return None

    async def cached(self, method: str, path: str, identity: Identity | None) -> Exchange | None:
        """A GET shared between checks (baselines are not re-sent by every check)."""
        key = (method, path, identity.name if identity else "")
        if self.target.dry_run:  # list the shared baseline under every check that needs it
            return await self.send(method, path, identity=identity)
        if key not in self._cache:
            self._cache[key] = await self.send(method, path, identity=identity)
        return self._cache[key]

    def evidence(self, ex: Exchange, note: str = "") -> Evidence:
        red = self.redactor
        req_lines = [f"{ex.method} {red.text(ex.url)}"]
        req_lines += [
            f"{k}: {red.header(k, v)}"
            for k, v in ex.request_headers.items()
            if k.lower() not in {"accept-encoding", "connection", "user-agent", "accept"}
        ]
        if ex.request_body:
            req_lines += ["", red.text(ex.request_body[:EXCERPT])]
        resp_lines = [f"HTTP {ex.status}"]
        resp_lines += [f"{k}: {red.header(k, v)}" for k, v in ex.headers.multi_items()]
        body = ex.text
        resp_lines += ["", red.text(body[:EXCERPT]) + ("…" if len(body) > EXCERPT else "")]
        return Evidence("\n".join(req_lines), "\n".join(resp_lines), red.text(note))

    # ------------------------------------------------------------- identities
    @property
    def users(self) -> list[Identity]:
        """Identities that are not administrators."""
        return [i for i in self.identities if not i.admin]

    @property
    def admins(self) -> list[Identity]:
        return [i for i in self.identities if i.admin]

    def login_recipes(self) -> list[tuple[Identity, LoginRecipe]]:
        return [(i, i.login) for i in self.identities if i.login is not None]

    async def login(
        self,
        recipe: LoginRecipe,
        fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Exchange | None:
        """POST the recipe's fields (with ``fields`` overriding some) to its login path."""
        body = {**recipe.fields, **(fields or {})}
        if recipe.form:
            return await self.send(
                "POST",
                recipe.path,
                content=urlencode(body),
                headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
            )
        return await self.send("POST", recipe.path, json_body=body, headers=headers)

    async def relogin(self, ident: Identity) -> bool:
        """Log ``ident`` in again and use the new credential from now on.

        For probes that end the identity's sessions on purpose (a password change that
        correctly revokes its tokens): the scan goes on with a fresh token.
        """
        if ident.login is None:
            return False
        ex = await self.login(ident.login)
        token, cookies = self.login_token(ident.login, ex), self.login_cookies(ex)
        if not token and not cookies:
            return False
        fresh = replace(ident, value=token or ident.value, cookies=cookies or ident.cookies)
        self.identities = [fresh if i.name == ident.name else i for i in self.identities]
        self.redactor.add(*fresh.secrets())
        self._cache = {k: v for k, v in self._cache.items() if k[2] != ident.name}
        return True

    @staticmethod
    def login_token(recipe: LoginRecipe, ex: Exchange | None) -> str | None:
        if ex is None or not ex.ok:
            return None
        return token_from(ex.json(), recipe.token_path)

    @staticmethod
    def login_cookies(ex: Exchange | None) -> dict[str, str]:
        return cookies_from(ex.set_cookies) if ex is not None and ex.ok else {}

    # ----------------------------------------------------------- the oracle
    async def profiles(self) -> dict[str, Profile]:
        """Each identity's own profile from the API's "who am I" endpoint, if it has one."""
        async with self._profile_lock:
            if self._profiles is None:
                self._profiles = await self._find_profiles()
            return self._profiles

    def self_candidates(self) -> list[str]:
        ops = [op for op in self.spec.operations if op.method == "GET" and not op.path_params]
        ranked = [op.path for op in ops if _SELF_PATH.search(op.path)]
        if not self.spec.operations:
            base = self.spec.base_path
            ranked += [base + p for p in COMMON_SELF_PATHS]
        return list(dict.fromkeys(ranked))

    async def _find_profiles(self) -> dict[str, Profile]:
        if not self.identities:
            return {}
        for path in self.self_candidates()[:4]:
            found: dict[str, Profile] = {}
            for ident in self.identities:
                ex = await self.cached("GET", path, ident)
                if ex is None or not ex.ok or not isinstance(ex.json(), dict):
                    break
                found[ident.name] = Profile(path, ex.json())
            else:
                if self._finish_profiles(found):
                    return found
        return {}

    def _finish_profiles(self, found: dict[str, Profile]) -> bool:
        values = {
            name: {str(v) for _k, v in leaves(p.body) if v not in (None, "")}
            for name, p in found.items()
        }
        for ident in self.identities:
            prof = found[ident.name]
            others = set().union(*(v for n, v in values.items() if n != ident.name))
            idish = {
                str(v)
                for k, v in leaves(prof.body)
                if k.split(".")[-1] in _ID_KEYS and v not in (None, "", True, False)
            }
            known = ident.markers() & values[ident.name]
            prof.markers = (idish | known) - others if len(found) > 1 else idish | known
            prof.markers = {m for m in prof.markers if len(m) >= 1}
            body = prof.body if isinstance(prof.body, dict) else {}
            raw_id = body.get("id", body.get("user_id", body.get("userId")))
            prof.own_id = str(raw_id) if raw_id is not None else None
        # With two identities the endpoint must tell them apart, or it is not "who am I".
        distinct = len(found) < 2 or len({repr(p.body) for p in found.values()}) == len(found)
        return distinct and all(p.markers for p in found.values())

    async def shows(self, ex: Exchange | None, identity: Identity) -> bool:
        """Whether ``ex`` is a success whose body names ``identity`` (by its profile)."""
        if ex is None or not ex.ok:
            return False
        prof = (await self.profiles()).get(identity.name)
        markers = prof.markers if prof else identity.markers()
        data = ex.json()
        if data is None:
            return False
        return any(str(v) in markers for _k, v in leaves(data) if v not in (None, "", True, False))

    # --------------------------------------------------------------- paths
    def sample_path(self, op: Operation, profile: Profile | None = None) -> str | None:
        """``op``'s path with parameters filled from examples, the caller's id, or 1."""
        values: dict[str, Any] = {}
        for param in op.path_params:
            low = param.name.lower()
            if profile and profile.own_id and ("user" in low or low in {"id", "uid"}):
                values[param.name] = profile.own_id
            elif param.example is not None:
                values[param.name] = param.example
            else:
                values[param.name] = 1 if param.type in {"integer", "number"} else "1"
        return op.fill(values)
