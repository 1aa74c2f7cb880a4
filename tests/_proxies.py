"""Debian's nginx and Caddy in front of bastion, configured with the snippets in
docs/snippets/ exactly as the docs give them (only the addresses are substituted)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._procs import running
from tests._services import free_port

SNIPPETS = Path(__file__).parents[1] / "docs" / "snippets"
NGINX_SNIPPET = SNIPPETS / "nginx-bastion.conf"
CADDYFILE = SNIPPETS / "Caddyfile"


def _binary(name: str, package: str, fallback: str | None = None) -> str:
    found = shutil.which(name) or (fallback if fallback and Path(fallback).exists() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (scripts/test installs {package})")
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return found


def nginx_binary() -> str:
    return _binary("nginx", "nginx-light", "/usr/sbin/nginx")


def caddy_binary() -> str:
    return _binary("caddy", "caddy")


def http_lines(bastion_port: int, upstream: str) -> str:
    """The lines the snippet's header asks for in ``http { }`` (the ``upstream`` blocks
    and ``map``s), as written there but for the two addresses."""
    text = NGINX_SNIPPET.read_text()
    lines = [
        line.removeprefix("#").strip()
        for line in text.splitlines()
        if line.startswith(("#   map ", "#   upstream "))
    ]
    assert len(lines) == 4, "the snippet's header lost an upstream or a map"
    text = "\n    ".join(lines).replace("127.0.0.1:8080", f"127.0.0.1:{bastion_port}")
    return text.replace("127.0.0.1:9000", upstream.removeprefix("http://"))


def nginx_conf(
    folder: Path, port: int, bastion_port: int, upstream: str, include: Path = NGINX_SNIPPET
) -> Path:
    """An nginx.conf whose one server includes ``include`` (the documented snippet)."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    {http_lines(bastion_port, upstream)}
    server {{
        listen 127.0.0.1:{port};
        include {include};
    }}
}}
""",
        encoding="utf-8",
    )
    return conf


@contextlib.contextmanager
def nginx(folder: Path, bastion_port: int, upstream: str) -> Iterator[int]:
    """Run nginx with the snippet in front of bastion and ``upstream``; yields its port."""
    binary = nginx_binary()
    port = free_port()
    conf = nginx_conf(folder, port, bastion_port, upstream)
    with running([binary, "-c", str(conf), "-p", str(folder)], port):
        yield port


@contextlib.contextmanager
def caddy(folder: Path, bastion_port: int, upstream: str) -> Iterator[int]:
    """Run Caddy with the documented Caddyfile in front of bastion and ``upstream``."""
    binary = caddy_binary()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = CADDYFILE.read_text()
    site = site.replace("api.example.com", f"http://127.0.0.1:{port}")
    site = site.replace("127.0.0.1:8080", f"127.0.0.1:{bastion_port}")
    site = site.replace("127.0.0.1:9000", upstream.removeprefix("http://"))
    caddyfile = folder / "Caddyfile"
    caddyfile.write_text("{\n\tadmin off\n\tauto_https off\n}\n" + site)
    home = folder / "home"
    home.mkdir(exist_ok=True)
    cmd = [binary, "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
    env = {**os.environ, "HOME": str(home)}  # Caddy keeps its state under $HOME
    with running(cmd, port, log=folder / "caddy.log", env=env):
        yield port
