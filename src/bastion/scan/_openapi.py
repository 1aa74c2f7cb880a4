"""Operations from an OpenAPI 3.x or Swagger 2.0 document, or from a plain list.

Only local ``$ref`` pointers are followed (a remote one would contact another host).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from bastion.scan._errors import SpecError

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
SPEC_PATHS = (
    "/openapi.json",
    "/swagger.json",
    "/v3/api-docs",
    "/v2/api-docs",
    "/api/openapi.json",
    "/api-docs",
    "/swagger/v1/swagger.json",
    "/openapi.yaml",
)
_PARAM = re.compile(r"\{([^}/]+)\}")
# A GET whose last segment is an action changes state (a flaw in itself): ordinary read
# probes must never call it; only BFLA's dedicated probe does, on the user's own object.
ACTION = re.compile(
    r"/(archive|unarchive|disable|enable|activate|deactivate|approve|reject|publish|"
    r"unpublish|lock|unlock|ban|unban|promote|demote|subscribe|unsubscribe|toggle|"
    r"confirm|verify|reset|cancel|delete|remove|destroy|purge|close|reopen|logout|signout)$",
    re.I,
)


@dataclass(frozen=True)
class Param:
    name: str
    location: str  # path | query | header | cookie
    required: bool
    type: str = "string"
    example: Any = None


@dataclass(frozen=True)
class Operation:
    """One method on one path, with what the scanner needs to call it."""

    method: str
    path: str
    params: tuple[Param, ...] = ()
    body_schema: dict[str, Any] | None = None
    body_media: str = "application/json"
    response_schema: dict[str, Any] | None = None
    secured: bool = True  # False when the spec says ``security: []`` for it
    security_schemes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    summary: str = ""
    operation_id: str = ""
    websocket: bool = False  # the spec declares a 101 Switching Protocols answer

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def path_params(self) -> tuple[Param, ...]:
        names = _PARAM.findall(self.path)
        declared = {p.name: p for p in self.params if p.location == "path"}
        return tuple(declared.get(n, Param(n, "path", True)) for n in names)

    @property
    def query_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.location == "query")

    @property
    def safe(self) -> bool:
        return self.method in {"GET", "HEAD", "OPTIONS"}

    def fill(self, values: dict[str, Any]) -> str | None:
        """The path with its parameters filled from ``values``; None if one is missing."""
        out = self.path
        for param in self.path_params:
            if param.name not in values:
                return None
            out = out.replace("{" + param.name + "}", str(values[param.name]))
        return out

    def declared_fields(self) -> set[str] | None:
        """Property names the response schema declares, or None when it does not say."""
        return _properties(self.response_schema)


@dataclass
class ApiSpec:
    """What the scanner knows about the API's surface."""

    operations: list[Operation] = field(default_factory=list)
    security_schemes: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_path: str = ""
    source: str = ""

    # GETs named like actions (``/orders/{id}/archive``), kept out of ``operations``.
    actions: list[Operation] = field(default_factory=list)

    def find(self, method: str, path: str) -> Operation | None:
        for op in [*self.operations, *self.actions]:
            if op.method == method.upper() and op.path == path:
                return op
        return None

    def set_actions_aside(self) -> ApiSpec:
        """Move GET operations named like actions from ``operations`` to ``actions``."""
        self.actions += [o for o in self.operations if o.method == "GET" and ACTION.search(o.path)]
        self.operations = [o for o in self.operations if o not in self.actions]
        return self


def _properties(schema: dict[str, Any] | None) -> set[str] | None:
    if not schema:
        return None
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return _properties(schema["items"])
    props = schema.get("properties")
    if isinstance(props, dict):
        names = set(props)
        for part in schema.get("allOf", []):
            names |= _properties(part) or set()
        return names
    return None


def parse_text(text: str, source: str = "<spec>") -> dict[str, Any]:
    """Parse a JSON or YAML document into a mapping."""
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"{source}: neither JSON nor YAML: {exc}") from None
    if not isinstance(data, dict) or not ({"openapi", "swagger"} & set(data)):
        raise SpecError(f"{source}: not an OpenAPI 3.x or Swagger 2.0 document")
    return data


def _map(node: Any) -> dict[str, Any]:
    return node if isinstance(node, dict) else {}


def _seq(node: Any) -> list[Any]:
    return node if isinstance(node, list) else []


def load_spec(doc: dict[str, Any], source: str = "<spec>") -> ApiSpec:
    """Turn a parsed OpenAPI/Swagger document into operations.

    Raises:
        SpecError: the document's structure is not an API description.
    """
    try:
        return _load(doc, source)
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise SpecError(f"{source}: malformed OpenAPI document ({exc})") from None


def _load(doc: dict[str, Any], source: str) -> ApiSpec:
    resolver = _Resolver(doc)
    swagger2 = str(doc.get("swagger", "")).startswith("2")
    if swagger2:
        base_path = str(doc.get("basePath", "") or "")
        schemes = _map(doc.get("securityDefinitions"))
    else:
        base_path = _server_path(doc.get("servers"))
        schemes = _map(_map(doc.get("components")).get("securitySchemes"))
    global_security = _seq(doc.get("security")) if "security" in doc else None
    spec = ApiSpec(security_schemes=schemes, base_path=base_path.rstrip("/"), source=source)
    for raw_path, item in _map(doc.get("paths")).items():
        item = resolver.deref(item)
        if not isinstance(item, dict) or not str(raw_path).startswith("/"):
            continue
        shared = [resolver.deref(p) for p in _seq(item.get("parameters"))]
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                spec.operations.append(
                    _operation(
                        method,
                        spec.base_path + raw_path,
                        op,
                        shared,
                        resolver,
                        global_security,
                        swagger2,
                    )
                )
    return spec.set_actions_aside()


def _server_path(servers: Any) -> str:
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        url = str(servers[0].get("url", ""))
        if url.startswith(("http://", "https://")):
            url = "/" + url.split("://", 1)[1].partition("/")[2]
        return url if url.startswith("/") else ""
    return ""


def _operation(
    method: str,
    path: str,
    op: dict[str, Any],
    shared: list[Any],
    resolver: _Resolver,
    global_security: Any,
    swagger2: bool,
) -> Operation:
    params: dict[tuple[str, str], Param] = {}
    body_schema: dict[str, Any] | None = None
    media = "application/json"
    for raw in [*shared, *(resolver.deref(p) for p in _seq(op.get("parameters")))]:
        if not isinstance(raw, dict) or "name" not in raw:
            continue
        where = str(raw.get("in", "query"))
        if where == "body":  # Swagger 2
            body_schema = resolver.resolve_schema(raw.get("schema"))
            continue
        if where == "formData":
            media = "application/x-www-form-urlencoded"
            continue
        schema = resolver.resolve_schema(raw.get("schema")) or raw
        if not isinstance(raw["name"], str):
            continue
        params[(where, raw["name"])] = Param(
            name=str(raw["name"]),
            location=where,
            required=bool(raw.get("required", where == "path")),
            type=str(schema.get("type", "string")),
            example=raw.get("example", schema.get("example", schema.get("default"))),
        )
    if not swagger2 and isinstance(op.get("requestBody"), dict):
        content = _map(_map(resolver.deref(op["requestBody"])).get("content"))
        for candidate in ("application/json", "application/x-www-form-urlencoded"):
            if candidate in content:
                media = candidate
                body_schema = resolver.resolve_schema(_map(content[candidate]).get("schema"))
                break
    security = _seq(op["security"]) if "security" in op else global_security
    schemes = tuple(name for req in (security or []) if isinstance(req, dict) for name in req)
    return Operation(
        method=method.upper(),
        path=path,
        params=tuple(params.values()),
        body_schema=body_schema,
        body_media=media,
        response_schema=_response_schema(op, resolver, swagger2),
        # An empty requirement ({}) in the list makes authentication optional.
        secured=bool(security) and all(bool(req) for req in security),
        security_schemes=schemes,
        tags=tuple(str(t) for t in _seq(op.get("tags"))),
        summary=str(op.get("summary", "")),
        operation_id=str(op.get("operationId", "")),
        websocket=any(str(code) == "101" for code in _map(op.get("responses"))),
    )


def _response_schema(
    op: dict[str, Any], resolver: _Resolver, swagger2: bool
) -> dict[str, Any] | None:
    responses: dict[Any, Any] = _map(op.get("responses"))
    for code in ("200", "201", 200, 201):  # YAML may give the codes as integers
        resp = resolver.deref(responses.get(code))
        if not isinstance(resp, dict):
            continue
        if swagger2:
            return resolver.resolve_schema(resp.get("schema"))
        content = _map(resp.get("content"))
        media = content.get("application/json") or next(iter(content.values()), None)
        if isinstance(media, dict):
            return resolver.resolve_schema(media.get("schema"))
    return None


MAX_SCHEMA_NODES = 2000  # schemas in one resolved body or response schema


class _Resolver:
    """Follows local ``#/...`` references, with a depth guard against cycles."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def deref(self, node: Any, depth: int = 0) -> Any:
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and depth < 32:
            node = self._lookup(node["$ref"])
            depth += 1
        return node

    def _lookup(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            return {}  # remote refs are never fetched
        node: Any = self.doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
        return node if node is not None else {}

    def resolve_schema(self, schema: Any) -> dict[str, Any] | None:
        """``schema`` with its references followed, as a tree of at most
        :data:`MAX_SCHEMA_NODES` schemas, 8 levels deep: shared components referenced
        from many properties on many levels (real APIs do so; a hostile document can
        on purpose) would otherwise expand exponentially."""
        return self._resolve(schema, 0, [MAX_SCHEMA_NODES])

    def _resolve(self, schema: Any, depth: int, budget: list[int]) -> dict[str, Any] | None:
        schema = self.deref(schema)
        if not isinstance(schema, dict) or depth > 8 or budget[0] <= 0:
            return None
        budget[0] -= 1
        out = dict(schema)
        if isinstance(out.get("properties"), dict):
            out["properties"] = {
                k: self._resolve(v, depth + 1, budget) or {} for k, v in out["properties"].items()
            }
        if isinstance(out.get("items"), dict):
            out["items"] = self._resolve(out["items"], depth + 1, budget) or {}
        if isinstance(out.get("allOf"), list):
            out["allOf"] = [self._resolve(s, depth + 1, budget) or {} for s in out["allOf"]]
        return out


def parse_endpoint_list(text: str) -> ApiSpec:
    """A plain list, one ``METHOD /path`` (or just ``/path`` for GET) per line."""
    spec = ApiSpec(source="endpoint list")
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        method, _, path = line.partition(" ") if " " in line else ("GET", "", line)
        path = path.strip()
        if method.lower() not in METHODS or not path.startswith("/"):
            raise SpecError(f"endpoint list line {number}: expected 'METHOD /path', got {line!r}")
        params = tuple(Param(n, "path", True) for n in _PARAM.findall(path))
        spec.operations.append(Operation(method=method.upper(), path=path, params=params))
    return spec.set_actions_aside()
