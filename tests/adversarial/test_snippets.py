"""The documented snippets remove every header only a proxy may set (bastion's own list,
src/bastion/gateway/_headers.py): adding a header to that list fails here until each
snippet handles it."""

from __future__ import annotations

import fnmatch
import re

from bastion.gateway._headers import PROXY_ONLY
from tests._proxies import CADDYFILE, NGINX_SNIPPET


def _location(text: str, name: str) -> str:
    start = text.index(f"location {name} {{")
    return text[start : text.index("\n}", start)]


def test_nginx_sets_or_blanks_each_proxy_only_header_for_the_app() -> None:
    app = _location(NGINX_SNIPPET.read_text(), "/")
    names = {n.lower() for n in re.findall(r"proxy_set_header\s+(\S+)", app)}
    assert sorted(PROXY_ONLY - names) == []


def test_nginx_blanks_the_pair_it_does_not_send_to_bastion() -> None:
    auth = _location(NGINX_SNIPPET.read_text(), "= /_bastion_auth")
    assert 'proxy_set_header X-Forwarded-Method "";' in auth
    assert 'proxy_set_header X-Forwarded-Uri "";' in auth
    assert "proxy_set_header X-Original-URI $request_uri;" in auth


def test_caddy_removes_each_proxy_only_header_before_asking_bastion() -> None:
    text = CADDYFILE.read_text()
    removed = [p.lower() for p in re.findall(r"request_header\s+-(\S+)", text)]
    assert text.index("request_header -X-Forwarded*") < text.index("forward_auth 127")
    left = [h for h in PROXY_ONLY if not any(fnmatch.fnmatch(h, p) for p in removed)]
    assert sorted(left) == ["x-real-ip"]  # set from Caddy's own view of the client
    assert "request_header X-Real-IP {remote_host}" in text


def _block(text: str, fence: str) -> list[str]:
    start = text.index(f"```{fence}\n") + len(fence) + 4
    return text[start : text.index("```", start)].splitlines()


def _code(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_the_docs_show_the_snippets_as_the_tests_run_them() -> None:
    """A reader copies docs/forward-auth.md, the tests run docs/snippets/: the same."""
    docs = (NGINX_SNIPPET.parents[1] / "forward-auth.md").read_text()
    assert _code(_block(docs, "caddyfile")) == _code(CADDYFILE.read_text().splitlines())
    http = ("map ", "upstream ")
    shown = [line.split(" #")[0].strip() for line in _block(docs, "nginx") if line.startswith(http)]
    wanted = [line.removeprefix("#").strip() for line in NGINX_SNIPPET.read_text().splitlines()]
    assert shown == [w for w in wanted if w.startswith(http)]
