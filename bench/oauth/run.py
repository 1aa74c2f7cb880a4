"""bastion's token endpoint: ``client_credentials`` throughput and latency under wrk.

Builds a deployment in a temp dir (tests/_deploy.py), registers a confidential client,
starts ``bastion serve`` (granian, 1 worker) on 127.0.0.1, checks one token request by
hand (an ES256 RS 9068 JWT), warms up, then runs the same wrk load as
bench/oauth_baseline (``wrk -t2 -c64 -d10s --latency``, ``token.lua``, HTTP Basic) and
prints one summary line in the baseline's format, so the two sit side by side.

Usage: ``bench/oauth/run [--connections 64] [--duration 10] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _p in (ROOT, ROOT / "src", ROOT / "bench"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])

from oauth_baseline.run import parse_wrk, rss_kib  # noqa: E402

from bastion.oauth.clients import ClientStore, record_from_metadata  # noqa: E402
from bastion.store import open_store  # noqa: E402
from tests._deploy import make_deployment  # noqa: E402
from tests._procs import bastion_serve  # noqa: E402
from tests._services import free_port  # noqa: E402

FORM = "grant_type=client_credentials&scope=orders%3Aread"


async def prepare(folder: Path, port: int) -> tuple[Path, str, str]:
    deployment = await make_deployment(
        folder, "http://127.0.0.1:9", listen={"host": "127.0.0.1", "port": port},
        audit={"path": "audit.log"}, rate_limits={"per_ip": None, "per_principal": None},
    )  # fmt: skip
    async with open_store(deployment.config) as ctx:
        created = await ClientStore(ctx.engine, ctx.keyring.client_secret_hmac).create(
            record_from_metadata(
                {
                    "client_id": "bench-client",
                    "scope": "orders:read",
                    "grant_types": ["client_credentials"],
                }
            )
        )
    assert created.secret is not None
    return deployment.config_file, created.record.client_id, created.secret


def wrk(endpoint: str, basic: str, connections: int, duration: int) -> str:
    env = dict(os.environ, BENCH_BASIC=basic, BENCH_FORM=FORM)
    lua = ROOT / "bench" / "oauth_baseline" / "token.lua"
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(lua),
           endpoint]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout


def one_token(endpoint: str, basic: str) -> dict[str, Any]:
    request = urllib.request.Request(
        endpoint, data=FORM.encode(), method="POST",
        headers={"Authorization": f"Basic {basic}",
                 "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="bastion-oauth-bench-") as tmp:
        port = free_port()
        config_file, client_id, secret = asyncio.run(prepare(Path(tmp), port))
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        with bastion_serve(config_file, port) as base:
            endpoint = f"{base}/oauth2/token"
            token = one_token(endpoint, basic)
            if not token.get("access_token", "").startswith("eyJ"):
                sys.exit(f"the token endpoint did not issue a JWT: {token}")
            pid = int(subprocess.check_output(["pgrep", "-n", "-f", str(config_file)]).split()[0])
            if args.warmup:
                wrk(endpoint, basic, args.connections, args.warmup)
            out = wrk(endpoint, basic, args.connections, args.duration)
            result = parse_wrk(out)
            rss = rss_kib(pid)
    result.update(
        {
            "server": "bastion serve (granian, 1 worker)",
            "endpoint": "POST /oauth2/token grant_type=client_credentials (ES256 JWT)",
            "connections": args.connections,
            "duration_s": args.duration,
            "rss_mib": round(rss["VmRSS"] / 1024, 1),
            "rss_peak_mib": round(rss["VmHWM"] / 1024, 1),
        }
    )
    print(out.rstrip())
    print()
    print(
        f"bastion client_credentials: {result['requests_per_second']:.0f} req/s, "
        f"p50 {result.get('p50_ms')} ms, p99 {result.get('p99_ms')} ms, "
        f"non-2xx {result['non_2xx']}, RSS {result['rss_mib']} MiB "
        f"(peak {result['rss_peak_mib']} MiB)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
