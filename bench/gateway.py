"""bastion's gateway benchmark: one command, real servers, wrk, baselines, ratios.

    bench/run                       # or: .venv/bin/python bench/gateway.py
    bench/run --duration 5 --skip-micro --json out.json

Everything is set up in a temp dir: a complete deployment (tests/_deploy.py: config,
master key, migrated SQLite, API keys, a trusted ES256 issuer), the echo upstream
(``python -m bastion.demo``), nginx, the baselines in bench/baselines/, and bastion
itself via ``bastion serve --server granian|uvicorn`` (1 worker). Only 127.0.0.1 is
targeted and each load run is bounded by ``--duration``.

Rows (each under the same wrk; every server runs throughout, and the rows take turns in
``--repeat`` rounds, a warm-up before each measured run; a row's median run is reported,
and a ratio between rows is the median of its round-by-round ratios, so the shared
host's drift over the minutes of a run falls on every row alike):
  A   nginx static ``return 200`` (1 worker)
  G   granian RSGI app answering 200 with bastion's reply headers, no decision (the
      server's own cost: the ceiling of rows 1 and 2)
  B   FastAPI + PyJWT ES256 verify on every request (uvicorn, 1 worker, uvloop)
  1   bastion forward-auth, ES256 JWT           (granian and uvicorn)
  2   bastion forward-auth, API key             (granian and uvicorn)
  3   bastion proxy → echo upstream, API key     (granian and uvicorn)

Rows 1, 2 and 4 run an instance whose routes have no upstream (what sits behind a proxy;
under granian it serves RSGI); row 3 runs the same routes with upstreams (ASGI).
  3b  bare aiohttp.web + ClientSession proxy → same upstream
  4   nginx auth_request → bastion → upstream (docs/snippets), JWT
  4b  nginx proxy → upstream, no auth
  up  the echo upstream hit directly (the ceiling of rows 3, 3b, 4, 4b)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
for _p in (ROOT, ROOT / "src", BENCH):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tests._deploy import AUDIENCE, ISSUER, Deployment, make_deployment  # noqa: E402
from tests._procs import running  # noqa: E402
from tests._proxies import NGINX_SNIPPET as SNIPPET  # noqa: E402
from tests._proxies import http_lines  # noqa: E402
from tests._services import free_port  # noqa: E402

PY = sys.executable
# Every process started here (bastion serve, the demo upstream, baselines) imports bastion
# from this tree, so a copy of the repository benchmarks its own code.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
)
HIGH = "100000000/minute"  # evaluated on every request, never reached
STATIC_BODY = '{"status":"ok"}'

# Targets from the issue.
TARGET_VS_FASTAPI = 10.0
TARGET_VS_NGINX = 0.3
TARGET_P99_MS = 5.0
TARGET_VS_AIOHTTP_PROXY = 0.5
TARGET_RSS_MB = 150.0


# -- results -----------------------------------------------------------------------------


@dataclass
class Result:
    key: str
    label: str
    server: str = ""
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non_2xx: int = 0
    socket_errors: str = ""
    background_cpu: float = 0.0  # % of the machine busy just before the run (others' load)
    rss_mb: float | None = None
    pss_mb: float | None = None
    peak_rss_mb: float | None = None
    error: str = ""
    runs: list[float] = field(default_factory=list)  # req/s of every measured run, by round
    steal: list[float] = field(default_factory=list)  # % of CPU stolen during each run
    parsed: list[tuple[str, dict[str, Any]]] = field(default_factory=list, repr=False)
    raw: str = field(default="", repr=False)


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"unparsable wrk latency {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out: str) -> dict[str, Any]:
    """req/s, p50, p99 (ms), non-2xx count and socket errors from ``wrk --latency``."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if rps is None or p50 is None or p99 is None:
        raise ValueError("wrk output without Requests/sec or latency distribution:\n" + out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors:\s+(.*)", out)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sock.group(1).strip() if sock else "",
    }


# -- process memory ----------------------------------------------------------------------


def _session_pids(sid: int) -> list[int]:
    """Every live process in session ``sid`` (each server runs in its own session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid:  # fields after "comm)": state ppid pgrp session ...
            pids.append(int(entry))
    return pids


def _kb(path: str, name: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(sid: int) -> tuple[float, float, float]:
    """(RSS, PSS, peak RSS) in MB summed over the server's process tree."""
    pids = _session_pids(sid)
    rss = sum(_kb(f"/proc/{p}/status", "VmRSS") for p in pids)
    hwm = sum(_kb(f"/proc/{p}/status", "VmHWM") for p in pids)
    pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
    return rss / 1024, pss / 1024, hwm / 1024


def busy_percent(seconds: float = 1.0) -> float:
    """How busy the whole machine is (all cores, %) over ``seconds``: before a run, with
    the servers idle, anything above a few % is someone else's load skewing the numbers."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    total = total1 - total0
    return 100.0 * (1 - (idle1 - idle0) / total) if total else 0.0


def wait_quiet(limit: float = 10.0, patience: float = 30.0) -> float:
    """Wait (up to ``patience`` s) for the machine to be idle; return the last busy %."""
    deadline = time.monotonic() + patience
    busy = busy_percent()
    while busy > limit and time.monotonic() < deadline:
        busy = busy_percent()
    return busy


# -- load --------------------------------------------------------------------------------


@dataclass
class Load:
    threads: int
    connections: int
    duration: int
    warmup: int
    repeat: int = 1

    def run(self, url: str, headers: dict[str, str], *, seconds: int | None = None) -> str:
        cmd = ["wrk", f"-t{self.threads}", f"-c{self.connections}"]
        cmd += [f"-d{seconds or self.duration}s", "--latency", "--timeout", "5s"]
        for name, value in headers.items():
            cmd += ["-H", f"{name}: {value}"]
        cmd.append(url)
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=(seconds or self.duration) + 30
        )
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed: {done.stderr.strip()}")
        return done.stdout


def check(url: str, headers: dict[str, str]) -> None:
    """One request before loading: a benchmark of 401s would measure the wrong thing."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status != 200:
        raise RuntimeError(f"{url} answered {status}, expected 200")


def cpu_times() -> list[int]:
    """The machine's CPU time counters (``/proc/stat``'s first line, in ticks)."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]


def steal_percent(before: list[int], after: list[int]) -> float:
    """Share of the machine's CPU time the hypervisor gave to someone else between two
    :func:`cpu_times` samples (``steal``, the 8th counter): on a shared host, what a slow
    run lost."""
    total = sum(after[:8]) - sum(before[:8])
    return 100.0 * (after[7] - before[7]) / total if total > 0 else 0.0


@dataclass
class Row:
    """One load target: a URL and the headers wrk sends, and the process tree whose
    memory is reported (``sid``: its session id)."""

    key: str
    label: str
    url: str
    headers: dict[str, str]
    server: str = ""
    sid: int | None = None


def _measure_once(load: Load, row: Row, result: Result) -> None:
    result.background_cpu = max(result.background_cpu, wait_quiet())
    load.run(row.url, row.headers, seconds=load.warmup)
    time.sleep(0.5)
    before = cpu_times()
    out = load.run(row.url, row.headers)
    result.steal.append(steal_percent(before, cpu_times()))
    parsed = parse_wrk(out)
    result.runs.append(parsed["rps"])
    result.parsed.append((out, parsed))
    if row.sid is not None:
        rss, pss, peak = tree_memory(row.sid)
        result.rss_mb = max(result.rss_mb or 0.0, rss)
        result.pss_mb, result.peak_rss_mb = pss, peak


def measure(load: Load, rows: list[Row]) -> list[Result]:
    """``load.repeat`` rounds; each round runs every row once, in turn (a warm-up, then
    one measured run). Interleaved so that the host's drift over the minutes of a
    benchmark falls on every row alike: ratios are taken round by round
    (:func:`paired_ratio`). A row that fails is reported and the others go on."""
    results = [Result(row.key, row.label, row.server) for row in rows]
    for row, result in zip(rows, results, strict=True):
        try:
            check(row.url, row.headers)  # a benchmark of 401s would measure the wrong thing
        except Exception as exc:  # noqa: BLE001 - one failed row must not lose the others
            result.error = f"{type(exc).__name__}: {exc}"
    for round_no in range(1, load.repeat + 1):
        for row, result in zip(rows, results, strict=True):
            if result.error:
                continue
            try:
                _measure_once(load, row, result)
            except Exception as exc:  # noqa: BLE001 - as above
                result.error = f"{type(exc).__name__}: {exc}"
            time.sleep(1.0)  # let TIME_WAIT and the servers' timers settle between runs
        done = [f"{r.key}{'/' + r.server[0] if r.server else ''} {r.runs[-1]:.0f}"
                for r in results if r.runs and len(r.runs) == round_no]  # fmt: skip
        print(f"  round {round_no}/{load.repeat}: " + ", ".join(done), flush=True)
    for result in results:
        if not result.error and result.runs:
            median = sorted(result.parsed, key=lambda run: run[1]["rps"])[len(result.runs) // 2]
            result.raw = median[0]
            for name, value in median[1].items():
                setattr(result, name, value)
        print(row_line(result), flush=True)
    return results


def row_line(result: Result) -> str:
    line = f"  {result.key:<4} {result.label:<48} {result.server:<8} "
    if result.error:
        return line + "ERROR " + result.error
    line += f"{result.rps:>9.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
    if len(result.runs) > 1:
        line += f"  (median of {len(result.runs)}: {min(result.runs):.0f}-{max(result.runs):.0f})"
    if result.non_2xx:
        line += f"  NON-2xx {result.non_2xx}"
    steal = max(result.steal, default=0.0)
    return line + f"  (busy before <= {result.background_cpu:.0f}%, steal <= {steal:.0f}%)"


def paired_ratio(row: Result, base: Result) -> float:
    """``row``'s req/s over ``base``'s, round by round, the median of the rounds."""
    pairs = [a / b for a, b in zip(row.runs, base.runs, strict=False) if b]
    return statistics.median(pairs) if pairs else 0.0


# -- the deployment and the servers ------------------------------------------------------


def bench_overrides(port: int, upstream: str) -> dict[str, Any]:
    """The whole pipeline on: several routes to match, every rate limit evaluated (never
    reached), audit to a file, metrics. The measured route asks for no signed assertion
    (its cost is shown in the micro-benchmarks)."""
    return {
        "listen": {"host": "127.0.0.1", "port": port, "workers": 1},
        "routes": [
            {"name": "public", "path_prefix": "/public", "upstream": upstream, "public": True},
            {
                "name": "admin",
                "path_prefix": "/api/admin",
                "upstream": upstream,
                "auth": ["jwt", "api_key"],
                "roles": ["admin"],
            },
            {
                "name": "reports",
                "path_prefix": "/api/reports",
                "upstream": upstream,
                "auth": ["jwt", "api_key"],
                "scopes": ["reports:read"],
            },
            {
                "name": "api",
                "path_prefix": "/api",
                "upstream": upstream,
                "auth": ["jwt", "api_key"],
                "rate_limit": HIGH,
            },
            {
                "name": "signed",
                "path_prefix": "/signed",
                "upstream": upstream,
                "auth": ["jwt", "api_key"],
                "assertion": True,
            },
        ],
        "audit": {"path": "audit.log"},
        "rate_limits": {
            "per_ip": HIGH,
            "per_principal": HIGH,
            "per_client": HIGH,
            "per_api_key": HIGH,
        },
    }


def config_for(
    deployment: Deployment, server: str, port: int, *, forward_auth_only: bool = False
) -> Path:
    """A copy of the deployment's config listening on ``port`` (same folder: same key/db).

    ``forward_auth_only``: the routes without upstreams, as a deployment behind nginx
    has them (granian then serves RSGI; see bastion.gateway._rsgi)."""
    data = yaml.safe_load(deployment.config_file.read_text())
    data["listen"]["port"] = port
    name = f"bastion-{server}"
    if forward_auth_only:
        for route in data["routes"]:
            route.pop("upstream", None)
        name += "-fa"
    path = deployment.folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def bastion(config: Path, port: int, server: str) -> Iterator[int]:
    """``bastion serve`` in its own session; yields the session id (for its memory)."""
    bin_ = Path(PY).with_name("bastion")
    cmd = [str(bin_), "serve", "--config", str(config), "--server", server]
    log = config.parent / f"serve-{server}.log"
    with running(cmd, port, log=log) as proc:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _healthy(f"http://127.0.0.1:{port}/healthz"):
                break
            time.sleep(0.1)
        yield proc.pid


def nginx_conf(folder: Path, ports: dict[str, int], bastion_port: int, upstream: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / sub).mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    keepalive_requests 100000;
    {http_lines(bastion_port, upstream)}
    server {{
        listen 127.0.0.1:{ports["static"]};
        location / {{ default_type application/json; return 200 '{STATIC_BODY}'; }}
    }}
    server {{
        listen 127.0.0.1:{ports["auth"]};
        include {SNIPPET};
    }}
    server {{
        listen 127.0.0.1:{ports["proxy"]};
        location / {{
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://app;
        }}
    }}
}}
""",
        encoding="utf-8",
    )
    return conf


def jwt_env(deployment: Deployment) -> dict[str, str]:
    pem = deployment.issuer_key.as_pem(private=False).decode()
    return {"BENCH_JWT_PEM": pem, "BENCH_JWT_ISS": ISSUER, "BENCH_JWT_AUD": AUDIENCE}


# -- the run -----------------------------------------------------------------------------


def run_all(args: argparse.Namespace, folder: Path) -> tuple[list[Result], dict[str, Any]]:
    load = Load(args.threads, args.connections, args.duration, args.warmup, args.repeat)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    ports = {s: free_port() for s in servers}  # forward-auth-only instances (rows 1, 2, 4)
    proxy_ports = {s: free_port() for s in servers}  # proxying instances (row 3)
    deployment = asyncio.run(
        make_deployment(
            folder / "bastion", upstream, **bench_overrides(ports[servers[0]], upstream)
        )
    )
    token = deployment.jwt(exp=int(time.time()) + 3600)
    jwt_h = {"Authorization": f"Bearer {token}"}
    key_h = {"X-API-Key": deployment.api_key}
    fwd = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/orders/42?x=1"}
    nginx_ports = {k: free_port() for k in ("static", "auth", "proxy")}
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = nginx_conf(folder / "nginx", nginx_ports, ports[servers[0]], upstream)
    demo = [PY, "-m", "bastion.demo", "--port", str(up_port)]
    logs = folder / "logs"
    logs.mkdir()
    print(
        f"wrk -t{load.threads} -c{load.connections} -d{load.duration}s --latency, "
        f"{load.repeat} rounds of every row in turn (a {load.warmup}s warm-up before each "
        f"run); temp dir {folder}",
        flush=True,
    )
    # Every server runs for the whole benchmark (idle while another row is loaded), so the
    # rows can take turns round by round.
    with contextlib.ExitStack() as stack:

        def start(cmd: list[str], port: int, log: str, **kw: Any) -> int:
            return stack.enter_context(running(cmd, port, log=logs / log, **kw)).pid

        start(demo, up_port, "upstream.log")
        start(
            [nginx_bin, "-c", str(conf), "-p", str(conf.parent)], nginx_ports["static"], "nginx.log"
        )
        rows = [
            Row("A", "nginx static return 200", f"http://127.0.0.1:{nginx_ports['static']}/", {})
        ]
        b_port = free_port()
        fastapi = [PY, "-m", "uvicorn", "fastapi_pyjwt:app", "--app-dir", str(BENCH / "baselines")]
        fastapi += ["--port", str(b_port), "--workers", "1", "--loop", "uvloop"]
        fastapi += ["--log-level", "warning", "--no-access-log"]
        b_sid = start(fastapi, b_port, "fastapi.log", env={**os.environ, **jwt_env(deployment)})
        b_url = f"http://127.0.0.1:{b_port}/api/orders/42"
        rows.append(Row("B", "FastAPI + PyJWT ES256 verify", b_url, jwt_h, "uvicorn", b_sid))
        g_port = free_port()
        bare_rsgi = [PY, "-m", "granian", "--interface", "rsgi", "--workers", "1", "--loop"]
        bare_rsgi += ["uvloop", "--no-ws", "--log-level", "warning", "--port", str(g_port)]
        bare_rsgi += ["--working-dir", str(BENCH / "baselines"), "rsgi_bare:app"]
        g_sid = start(bare_rsgi, g_port, "rsgi-bare.log")
        url = f"http://127.0.0.1:{g_port}/_bastion/auth"
        label = "granian RSGI app answering 200, no decision"
        rows.append(Row("G", label, url, {**fwd, **jwt_h}, "granian", g_sid))
        auth_path = "/_bastion/auth"
        for server in servers:
            port = ports[server]
            # Behind a proxy bastion only decides: routes without upstreams (granian: RSGI).
            config = config_for(deployment, server, port, forward_auth_only=True)
            sid = stack.enter_context(bastion(config, port, server))
            url = f"http://127.0.0.1:{port}{auth_path}"
            rows.append(
                Row("1", "bastion forward-auth, ES256 JWT", url, {**fwd, **jwt_h}, server, sid)
            )
            rows.append(
                Row("2", "bastion forward-auth, API key", url, {**fwd, **key_h}, server, sid)
            )
            if server == servers[0]:
                url = f"http://127.0.0.1:{nginx_ports['auth']}/api/orders/42"
                label = "nginx auth_request -> bastion -> upstream"
                rows.append(Row("4", label, url, jwt_h, server, sid))
            port = proxy_ports[server]
            sid = stack.enter_context(bastion(config_for(deployment, server, port), port, server))
            url = f"http://127.0.0.1:{port}/api/orders/42"
            rows.append(Row("3", "bastion proxy -> upstream, API key", url, key_h, server, sid))
        p_port = free_port()
        bare = [PY, str(BENCH / "baselines" / "aiohttp_proxy.py"), str(p_port), upstream]
        sid = start(bare, p_port, "aiohttp-proxy.log")
        url = f"http://127.0.0.1:{p_port}/api/orders/42"
        rows.append(Row("3b", "bare aiohttp proxy -> upstream", url, key_h, "aiohttp", sid))
        url = f"http://127.0.0.1:{nginx_ports['proxy']}/api/orders/42"
        rows.append(Row("4b", "nginx proxy -> upstream (no auth)", url, key_h))
        rows.append(Row("up", "echo upstream direct", f"{upstream}/api/orders/42", key_h))
        results = measure(load, rows)
    audit = deployment.audit_log
    info = {"audit_lines": sum(1 for _ in audit.open("rb")) if audit.exists() else 0}
    return results, info


# -- report ------------------------------------------------------------------------------


def _get(results: list[Result], key: str, server: str | None = None) -> Result | None:
    for r in results:
        if r.key == key and (server is None or r.server == server) and not r.error:
            return r
    return None


def table(results: list[Result]) -> str:
    a, b, g = _get(results, "A"), _get(results, "B"), _get(results, "G")
    head = (
        f"{'row':<4} {'scenario':<44} {'server':<8} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'RSS MB':>7} {'PSS MB':>7} {'vs A':>6} {'vs B':>7} {'vs G':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if r.error:
            lines.append(f"{r.key:<4} {r.label:<44} {r.server:<8} ERROR {r.error}")
            continue
        rss = f"{r.rss_mb:7.1f}" if r.rss_mb is not None else f"{'':>7}"
        pss = f"{r.pss_mb:7.1f}" if r.pss_mb is not None else f"{'':>7}"
        va = f"{paired_ratio(r, a):5.2f}x" if a else ""
        vb = f"{paired_ratio(r, b):6.1f}x" if b else ""
        vg = f"{paired_ratio(r, g):5.2f}x" if g and r.key in ("G", "1", "2") else ""
        note = f"  ({r.non_2xx} non-2xx!)" if r.non_2xx else ""
        lines.append(
            f"{r.key:<4} {r.label:<44} {r.server:<8} {r.rps:9.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f}"
            f" {rss} {pss} {va:>6} {vb:>7} {vg:>6}{note}"
        )
    return "\n".join(lines)


def verdicts(results: list[Result], servers: list[str]) -> list[tuple[str, str, float, str, bool]]:
    """(target, server, measured, threshold, passed) for every target and server."""
    out: list[tuple[str, str, float, str, bool]] = []
    a, b, bare = _get(results, "A"), _get(results, "B"), _get(results, "3b")
    for s in servers:
        jwt, key, proxy = _get(results, "1", s), _get(results, "2", s), _get(results, "3", s)
        if jwt and b:
            ratio = paired_ratio(jwt, b)
            out.append(
                (
                    "JWT decision vs FastAPI+PyJWT",
                    s,
                    ratio,
                    f">= {TARGET_VS_FASTAPI}x",
                    ratio >= TARGET_VS_FASTAPI,
                )
            )
        for name, row in (("JWT", jwt), ("API-key", key)):
            if row and a:
                ratio = paired_ratio(row, a)
                out.append(
                    (
                        f"{name} decision vs nginx static",
                        s,
                        ratio,
                        f">= {TARGET_VS_NGINX}x",
                        ratio >= TARGET_VS_NGINX,
                    )
                )
            if row:
                out.append(
                    (
                        f"{name} decision p99 (ms)",
                        s,
                        row.p99_ms,
                        f"<= {TARGET_P99_MS}",
                        row.p99_ms <= TARGET_P99_MS,
                    )
                )
        if proxy and bare:
            ratio = paired_ratio(proxy, bare)
            out.append(
                (
                    "proxy vs bare aiohttp proxy",
                    s,
                    ratio,
                    f">= {TARGET_VS_AIOHTTP_PROXY}x",
                    ratio >= TARGET_VS_AIOHTTP_PROXY,
                )
            )
        rss = [r.rss_mb for r in results if r.server == s and r.key in "1234" and r.rss_mb]
        if rss:
            out.append(
                (
                    "bastion RSS, max over runs (MB)",
                    s,
                    max(rss),
                    f"<= {TARGET_RSS_MB:.0f}",
                    max(rss) <= TARGET_RSS_MB,
                )
            )
    return out


def verdict_table(rows: list[tuple[str, str, float, str, bool]]) -> str:
    lines = [f"{'target':<36} {'server':<8} {'measured':>9} {'target':>8}  verdict"]
    lines.append("-" * len(lines[0]))
    for name, server, value, threshold, passed in rows:
        lines.append(
            f"{name:<36} {server:<8} {value:9.2f} {threshold:>8}  {'PASS' if passed else 'FAIL'}"
        )
    return "\n".join(lines)


def python_build() -> str:
    """How the interpreter was built, which moves every Python row (docs/benchmarks.md):
    a shared libpython (pyenv's default, slower) or one linked in, and the executable."""
    try:  # a shared libpython is mapped into the process; a linked-in one is not
        shared = "libpython" in Path("/proc/self/maps").read_text()
    except OSError:
        shared = False
    kind = "shared libpython" if shared else "libpython linked in"
    return f"{kind}, {os.path.realpath(getattr(sys, '_base_executable', sys.executable))}"


def machine() -> dict[str, str]:
    def version(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except OSError:
            return "?"
        return (done.stdout + done.stderr).strip().splitlines()[0]

    from importlib.metadata import version as pkg

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = _kb("/proc/meminfo", "MemTotal")
    info = {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": f"{platform.python_version()} ({python_build()})",
        "nginx": version(["nginx", "-v"]),
        "wrk": version(["wrk", "-v"]),
    }
    for name in (
        "granian",
        "uvicorn",
        "uvloop",
        "aiohttp",
        "fastapi",
        "pyjwt",
        "cryptography",
        "joserfc",
        "limits",
    ):
        try:
            info[name] = pkg(name)
        except Exception:  # noqa: BLE001 - not installed
            info[name] = "-"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="measured runs per row (the median is reported)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (-c)")
    parser.add_argument("--servers", default="granian,uvicorn", help="ASGI servers for bastion")
    parser.add_argument("--skip-micro", action="store_true", help="no in-process micro-benchmarks")
    parser.add_argument("--micro-only", action="store_true", help="only the micro-benchmarks")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, audit)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None and not args.micro_only:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    results: list[Result] = []
    extra: dict[str, Any] = {}
    micro_rows: list[tuple[str, float]] = []
    try:
        if not args.skip_micro:
            from micro import print_micro, run_micro

            micro_rows = run_micro(folder / "micro")
            print()
            print(print_micro(micro_rows), flush=True)
        if not args.micro_only:
            print("\nload runs:", flush=True)
            results, extra = run_all(args, folder)
            servers = [s.strip() for s in args.servers.split(",") if s.strip()]
            print(
                f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency; "
                f"bastion 1 worker, whole pipeline on; audit lines written: {extra['audit_lines']}"
            )
            print(table(results))
            print()
            rows = verdicts(results, servers)
            print(verdict_table(rows))
            extra["verdicts"] = rows
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        payload = {
            "machine": info,
            "args": {k: str(v) for k, v in vars(args).items()},
            "results": [
                {k: v for k, v in asdict(r).items() if k not in ("raw", "parsed")} for r in results
            ],
            "micro_us": micro_rows,
            **extra,
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
