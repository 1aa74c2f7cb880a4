"""Token endpoint: bastion against panva's oidc-provider, in one run, and their ratio.

Issue 3's target: bastion's ``client_credentials`` token endpoint must reach at least the
throughput of oidc-provider (Node.js) on the same machine under the same load. Both
servers start and stay up (an idle server costs the other nothing); the measurements
alternate, ``--rounds`` times each (bastion, oidc-provider, bastion, …), each preceded by
a warm-up and, when the box is shared, by a wait for it to be quiet. Every round runs
``wrk -t2 -c64 -d10s --latency`` with ``bench/oauth_baseline/token.lua`` (HTTP Basic
client authentication, a urlencoded ``grant_type=client_credentials`` form).

* bastion: ``bastion serve`` (granian, 1 worker) on a temp deployment (tests/_deploy.py)
  with a confidential client; ES256 RFC 9068 JWT access tokens; audit on, no rate limit.
* oidc-provider: ``tests/interop/node/idp.mjs`` (oidc-provider 9, in-memory adapter),
  ES256 RFC 9068 JWT access tokens (``resource`` parameter, ``resourceIndicators``).

Prints wrk's summary per round, one line per server (median req/s of its rounds, the
p50/p99 of that round, RSS after the run and peak) and ``ratio bastion/oidc-provider``
with PASS (at least 1x) or FAIL.

Usage: ``bench/oauth/run [--rounds 3] [--connections 64] [--duration 10] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _p in (ROOT, ROOT / "src", ROOT / "bench"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])

from gateway import busy_percent  # noqa: E402
from oauth_baseline import run as baseline  # noqa: E402

from bastion.oauth.clients import ClientStore, record_from_metadata  # noqa: E402
from bastion.store import open_store  # noqa: E402
from tests._deploy import make_deployment  # noqa: E402
from tests._procs import bastion_serve  # noqa: E402
from tests._services import free_port  # noqa: E402

BASTION_FORM = "grant_type=client_credentials&scope=orders%3Aread"
LUA = ROOT / "bench" / "oauth_baseline" / "token.lua"
QUIET_PERCENT = 10.0


@dataclass
class Target:
    """One token endpoint under test."""

    name: str
    endpoint: str
    basic: str
    form: str
    pid: int
    describe: dict[str, Any]
    rounds: list[dict[str, Any]] = field(default_factory=list)


async def _prepare(folder: Path, port: int) -> tuple[Path, str, str]:
    deployment = await make_deployment(
        folder, "http://127.0.0.1:9", listen={"host": "127.0.0.1", "port": port},
        audit={"path": "audit.log"}, rate_limits={"per_ip": None, "per_principal": None},
    )  # fmt: skip
    async with open_store(deployment.config) as ctx:
        created = await ClientStore(ctx.engine, ctx.keyring.client_secret_hmac).create(
            record_from_metadata(
                {"client_id": "bench-client", "scope": "orders:read",
                 "grant_types": ["client_credentials"]}
            )
        )  # fmt: skip
    assert created.secret is not None
    return deployment.config_file, created.record.client_id, created.secret


@contextlib.contextmanager
def bastion(folder: Path) -> Iterator[Target]:
    port = free_port()
    config_file, client_id, secret = asyncio.run(_prepare(folder, port))
    with bastion_serve(config_file, port) as base:
        # `bastion serve` execs `python -m bastion._server`: the newest such process is ours.
        pid = int(subprocess.check_output(["pgrep", "-n", "-f", "bastion._server"]).split()[0])
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        yield Target("bastion", f"{base}/oauth2/token", basic, BASTION_FORM, pid,
                     {"server": "bastion serve (granian, 1 worker)",
                      "endpoint": "POST /oauth2/token client_credentials (ES256 JWT)"})  # fmt: skip


@contextlib.contextmanager
def oidc_provider() -> Iterator[Target]:
    proc, ready = baseline.start_idp()
    try:
        basic = base64.b64encode(f"{baseline.CLIENT_ID}:{baseline.CLIENT_SECRET}".encode()).decode()
        yield Target("oidc-provider", ready["token_endpoint"], basic, baseline.FORM, proc.pid,
                     {"server": f"oidc-provider 9 (node {ready.get('node', '')})",
                      "endpoint": "POST /token client_credentials (ES256 JWT)"})  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def check_one_token(target: Target) -> None:
    request = urllib.request.Request(
        target.endpoint, data=target.form.encode(), method="POST",
        headers={"Authorization": f"Basic {target.basic}",
                 "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.loads(response.read())
    if not str(token.get("access_token", "")).startswith("eyJ"):
        sys.exit(f"{target.name} did not issue a JWT access token: {token}")


def wrk(target: Target, connections: int, duration: int) -> str:
    env = dict(os.environ, BENCH_BASIC=target.basic, BENCH_FORM=target.form)
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(LUA),
           target.endpoint]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout


def wait_quiet(seconds: float = 30.0) -> float:
    """Wait (up to ``seconds``) for the shared box to be quiet; how busy it was last."""
    deadline = time.monotonic() + seconds
    busy = busy_percent()
    while busy > QUIET_PERCENT and time.monotonic() < deadline:
        busy = busy_percent()
    return round(busy, 1)


def measure(target: Target, args: argparse.Namespace, say: Callable[[str], None]) -> None:
    busy = wait_quiet()
    if args.warmup:
        wrk(target, args.connections, args.warmup)
    out = wrk(target, args.connections, args.duration)
    result = baseline.parse_wrk(out)
    result["busy_before_percent"] = busy
    target.rounds.append(result)
    say(f"  {target.name:13} round {len(target.rounds)}: "
        f"{result['requests_per_second']:7.0f} req/s  p50 {result.get('p50_ms')} ms  "
        f"p99 {result.get('p99_ms')} ms  non-2xx {result['non_2xx']}  "
        f"busy before {busy}%")  # fmt: skip


def summary(target: Target) -> dict[str, Any]:
    by_rps = sorted(target.rounds, key=lambda r: r["requests_per_second"])
    median = by_rps[len(by_rps) // 2]
    rss = baseline.rss_kib(target.pid)
    return {
        **target.describe,
        "requests_per_second": round(statistics.median(r["requests_per_second"] for r in by_rps)),
        "p50_ms": median.get("p50_ms"),
        "p99_ms": median.get("p99_ms"),
        "non_2xx": sum(r["non_2xx"] for r in target.rounds),
        "rss_mib": round(rss["VmRSS"] / 1024, 1),
        "rss_peak_mib": round(rss["VmHWM"] / 1024, 1),
        "rounds": target.rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk (apt-get install wrk)")
    say = lambda line: print(line, flush=True)  # noqa: E731
    with (
        tempfile.TemporaryDirectory(prefix="bastion-oauth-bench-") as tmp,
        bastion(Path(tmp)) as ours,
        oidc_provider() as theirs,
    ):
        for target in (ours, theirs):
            check_one_token(target)
        say(f"wrk -t2 -c{args.connections} -d{args.duration}s, {args.rounds} rounds each, "
            "alternating")  # fmt: skip
        for _ in range(args.rounds):
            for target in (ours, theirs):
                measure(target, args, say)
        results = {t.name: summary(t) for t in (ours, theirs)}
    ratio = (
        results["bastion"]["requests_per_second"] / results["oidc-provider"]["requests_per_second"]
    )
    print()
    for name, r in results.items():
        print(f"{name} client_credentials: {r['requests_per_second']} req/s (median), "
              f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, non-2xx {r['non_2xx']}, "
              f"RSS {r['rss_mib']} MiB (peak {r['rss_peak_mib']} MiB)")  # fmt: skip
    verdict = "PASS" if ratio >= 1.0 else "FAIL"
    print(f"ratio bastion/oidc-provider: {ratio:.2f}x  {verdict} (target >= 1x)")
    if args.json:
        machine = {"nproc": os.cpu_count(), "python": platform.python_version(),
                   "kernel": platform.release()}  # fmt: skip
        document = {"machine": machine, "ratio": round(ratio, 3), "results": results}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
