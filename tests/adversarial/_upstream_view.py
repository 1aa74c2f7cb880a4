"""How upstreams read what reached them, written independently of bastion's own code:
the readings an attacker hopes one of them applies.

- names: CGI, WSGI, PHP and Rack fold ``X_Foo`` and ``X-Foo`` into ``HTTP_X_FOO`` and join
  repeats with "," (Python's wsgiref does exactly this);
- methods: Rails, Laravel, Symfony and Express's method-override take the method from
  ``X-HTTP-Method-Override`` and its siblings;
- paths: Symfony and IIS take the path from ``X-Original-URL``/``X-Rewrite-URL``; servers
  decode percent-escapes (some twice), Tomcat and Spring drop ``;`` parameters, Express
  and ASP.NET match case-insensitively, many merge slashes and resolve dot segments,
  IIS folds fullwidth letters (NFKC) and backslashes.
"""

from __future__ import annotations

import posixpath
import unicodedata
from typing import Any
from urllib.parse import unquote, urlsplit

METHOD_OVERRIDES = ("HTTP_X_HTTP_METHOD_OVERRIDE", "HTTP_X_HTTP_METHOD", "HTTP_X_METHOD_OVERRIDE")
URL_OVERRIDES = ("HTTP_X_ORIGINAL_URL", "HTTP_X_REWRITE_URL")


def environ(record: dict[str, Any]) -> dict[str, str]:
    """The WSGI environ's HTTP_* keys of a received request (wsgiref's folding)."""
    env: dict[str, str] = {}
    for name, value in record["headers"]:
        key = "HTTP_" + name.replace("-", "_").upper()
        env[key] = env[key] + "," + value if key in env else value
    return env


def methods(record: dict[str, Any]) -> set[str]:
    env = environ(record)
    found = {record["method"].upper()}
    for key in METHOD_OVERRIDES:
        found |= {m.strip().upper() for m in env.get(key, "").split(",") if m.strip()}
    return found


def _loose(path: str) -> str:
    path = unicodedata.normalize("NFKC", path).replace("\\", "/")
    path = "/".join(segment.split(";")[0] for segment in path.split("/"))
    path = posixpath.normpath("/" + path.lstrip("/")) if path else "/"
    return path.lower()


def paths(record: dict[str, Any]) -> set[str]:
    """Every path an upstream may act on for this request."""
    targets = [record["target"]]
    env = environ(record)
    for key in URL_OVERRIDES:
        targets += [t for t in env.get(key, "").split(",") if t]
    found: set[str] = set()
    for target in targets:
        raw = target if target.startswith("/") else urlsplit(target).path
        raw = raw.split("?")[0].split("#")[0]
        once = unquote(raw, errors="replace")
        for path in {raw, once, unquote(once, errors="replace")}:
            found |= {path, _loose(path)}
    return found


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def needs(method: str, path: str) -> str | None:
    """What the test deployment's routes (tests/adversarial/conftest.py) demand for one
    reading: ``"admin"`` (the admin role), ``"user"`` (any credential) or None."""
    if _under(path, "/admin") or (_under(path, "/items") and method in ("PUT", "PATCH", "DELETE")):
        return "admin"
    if _under(path, "/api"):
        return "user"
    return None


def demands(record: dict[str, Any]) -> set[str]:
    """What every reading of a received request demands (empty: public in all of them)."""
    found = {needs(m, p) for m in methods(record) for p in paths(record)}
    return {d for d in found if d is not None}
