"""Debian's nginx with auth_request in front of bastion's forward-auth endpoint and a
real upstream: each credential type, allowed and refused, through nginx."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._deploy import PASSWORD, Deployment, make_deployment
from tests._procs import bastion_serve, demo_upstream, running
from tests._services import free_port
from tests._ws import check_forward_auth_websockets

pytestmark = pytest.mark.nginx
SNIPPET = Path(__file__).parents[2] / "docs" / "snippets" / "nginx-bastion.conf"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed (scripts/test installs nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return found


def nginx_conf(
    folder: Path, port: int, bastion_port: int, upstream: str, include: Path = SNIPPET
) -> Path:
    """nginx on ``port`` with upstreams ``bastion`` and ``app``, serving ``include``."""
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
    upstream bastion {{ server 127.0.0.1:{bastion_port}; keepalive 16; }}
    upstream app {{ server {upstream.removeprefix("http://")}; keepalive 16; }}
    map $http_upgrade $bastion_connection {{ default upgrade; "" ""; }}
    server {{
        listen 127.0.0.1:{port};
        include {include};
    }}
}}
""",
        encoding="utf-8",
    )
    return conf


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Deployment]]:
    binary = nginx_binary()
    folder = tmp_path_factory.mktemp("nginx-stack")
    with demo_upstream() as upstream:
        bastion_port = free_port()
        routes_extra = {
            "name": "limited",
            "path_prefix": "/limited",
            "auth": ["api_key"],
            "rate_limit": "3/minute",
        }
        deployment = asyncio.run(
            make_deployment(
                folder / "bastion",
                upstream,
                listen={"host": "127.0.0.1", "port": bastion_port},
            )
        )
        # one extra route with a tight limit, added in front of the others
        import yaml

        data = yaml.safe_load(deployment.config_file.read_text())
        data["routes"].insert(0, routes_extra)
        live = {"name": "live", "path_prefix": "/live", "auth": ["api_key", "jwt", "basic"]}
        live["websocket"] = True
        data["routes"].insert(0, live)
        # Behind nginx bastion only decides: no route has an upstream, so `bastion serve`
        # runs granian's RSGI interface (tests/gateway/test_rsgi.py).
        for route in data["routes"]:
            route.pop("upstream", None)
        deployment.config_file.write_text(yaml.safe_dump(data))
        with bastion_serve(deployment.config_file, bastion_port) as direct:
            port = free_port()
            conf = nginx_conf(folder / "nginx", port, bastion_port, upstream)
            with running([binary, "-c", str(conf), "-p", str(folder / "nginx")], port):
                # RSGI gives no raw path: the path-prefix form is refused rather than
                # decided on a decoded path (only the RSGI interface answers this way).
                prefix_form = httpx.get(direct + "/_bastion/auth/api/x", timeout=10)
                assert prefix_form.headers["x-bastion-error"] == "raw_path_unavailable"
                serve_log = (deployment.config_file.parent / "serve.log").read_text()
                assert "(granian RSGI, 1 worker(s))" in " ".join(serve_log.split())
                yield f"http://127.0.0.1:{port}", deployment


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(base: str, path: str, **headers: str) -> httpx.Response:
    h = {k.replace("_", "-"): v for k, v in headers.items()}
    return httpx.get(base + path, headers=h, timeout=10)


def test_public_route_passes(stack: tuple[str, Deployment]) -> None:
    base, _ = stack
    response = get(base, "/public/hello")
    assert response.status_code == 200
    assert response.json()["headers"]["x-bastion-credential"] == "anonymous"


def test_no_credential_is_401_with_challenge(stack: tuple[str, Deployment]) -> None:
    base, _ = stack
    response = get(base, "/api/hello")
    assert response.status_code == 401
    assert "Bearer" in response.headers.get("www-authenticate", "")


@pytest.mark.parametrize("kind", ["api_key", "jwt", "basic"])
def test_each_credential_allowed_through_nginx(stack: tuple[str, Deployment], kind: str) -> None:
    base, d = stack
    headers = {
        "api_key": {"X-API-Key": d.api_key},
        "jwt": {"Authorization": f"Bearer {d.jwt()}"},
        "basic": {"Authorization": basic("alice", PASSWORD)},
    }[kind]
    response = httpx.get(base + "/api/hello", headers=headers, timeout=10)
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["x-bastion-subject"] == "alice"
    assert seen["x-bastion-credential"] == kind
    assert "authorization" not in seen
    assert "x-api-key" not in seen
    assert seen["x-bastion-assertion"].startswith("eyJ")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-API-Key": "bst_aaaaaaaaaaaa_notavalidkeyatall00000000000000000000000000000"}, 401),
        ({"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0."}, 401),
        ({"Authorization": basic("alice", "wrong")}, 401),
        ({"Authorization": basic("nobody", "wrong")}, 401),
    ],
)
def test_bad_credentials_refused_through_nginx(
    stack: tuple[str, Deployment], headers: dict[str, str], status: int
) -> None:
    base, _ = stack
    response = httpx.get(base + "/api/hello", headers=headers, timeout=10)
    assert response.status_code == status
    assert "upstream" not in response.text


def test_scope_and_role_refusals(stack: tuple[str, Deployment]) -> None:
    base, d = stack
    assert get(base, "/api/reports/q3", X_API_Key=d.api_key).status_code == 403
    assert get(base, "/api/reports/q3", X_API_Key=d.reports_key).status_code == 200
    assert get(base, "/api/admin/users", X_API_Key=d.api_key).status_code == 403
    assert get(base, "/api/admin/users", X_API_Key=d.admin_key).status_code == 200


def test_key_in_query_refused(stack: tuple[str, Deployment]) -> None:
    base, d = stack
    response = get(base, f"/api/hello?api_key={d.api_key}")
    assert response.status_code == 401


def test_spoofed_identity_headers_never_reach_upstream(stack: tuple[str, Deployment]) -> None:
    base, d = stack
    response = get(
        base,
        "/api/hello",
        X_API_Key=d.api_key,
        X_Bastion_Subject="root",
        X_Bastion_Roles="admin",
        X_Bastion_Assertion="forged",
    )
    seen = response.json()["headers"]
    assert seen["x-bastion-subject"] == "alice"
    assert seen.get("x-bastion-roles", "") == ""  # nginx drops the header bastion left empty
    assert seen["x-bastion-assertion"] != "forged"


def test_rate_limit_429_with_retry_after_through_nginx(stack: tuple[str, Deployment]) -> None:
    base, d = stack
    statuses = [get(base, "/limited/x", X_API_Key=d.api_key) for _ in range(4)]
    assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
    last = statuses[3]
    assert last.status_code == 429
    assert int(last.headers["retry-after"]) >= 1
    assert last.headers["ratelimit-policy"].startswith('"route:limited";q=3')
    assert last.json()["code"] == "rate_limited"


def test_unknown_path_is_404_not_500(stack: tuple[str, Deployment]) -> None:
    base, d = stack
    assert get(base, "/nowhere", X_API_Key=d.api_key).status_code == 404


def test_client_cannot_spoof_its_address_through_nginx(stack: tuple[str, Deployment]) -> None:
    base, d = stack
    get(base, "/api/hello", X_API_Key=d.api_key, X_Forwarded_For="198.51.100.99")
    # bastion flushes its audit buffer within a second
    deadline = 50
    text = ""
    for _ in range(deadline):
        text = d.audit_log.read_text() if d.audit_log.exists() else ""
        if text:
            break
        subprocess.run(["sleep", "0.1"], check=True)
    assert '"client_ip":"127.0.0.1"' in text
    assert "198.51.100.99" not in text


def test_websocket_through_nginx_on_routes_that_accept_them(
    stack: tuple[str, Deployment],
) -> None:
    # nginx asks bastion about the handshake (its Upgrade header included), then upgrades
    # the connection to the app: only on routes with websocket: true.
    base, d = stack
    asyncio.run(check_forward_auth_websockets(base, d.api_key, d.jwt(), basic("alice", PASSWORD)))
    # Plain requests still pass as before on both kinds of route.
    assert get(base, "/live/x", x_api_key=d.api_key).status_code == 200
    assert get(base, "/api/x", x_api_key=d.api_key).status_code == 200
