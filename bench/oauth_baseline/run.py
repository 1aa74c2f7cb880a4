"""Baseline for the authorization server: oidc-provider's client_credentials throughput.

Starts ``tests/interop/node/idp.mjs`` (panva's oidc-provider issuing ES256 JWT access
tokens, RFC 9068) on 127.0.0.1, checks one token request by hand, then drives the token
endpoint with wrk (HTTP Basic client authentication, ``token.lua``) and prints req/s,
p50, p99, errors and the IdP's RSS. bastion's own token endpoint must reach at least
this throughput on the same machine (issue 3).

Usage: ``bench/oauth_baseline/run [--connections 64] [--duration 10] [--json out.json]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE.parents[1] / "tests" / "interop" / "node"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-0123456789abcdef0123456789"
RESOURCE = "https://api.bastion.test/"
FORM = "grant_type=client_credentials&scope=orders%3Aread&resource=" + RESOURCE.replace(
    ":", "%3A"
).replace("/", "%2F")


def start_idp() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        sys.exit("needs node and tests/interop/node/node_modules (cd there and run: npm ci)")
    cmd = [
        node,
        str(NODE_DIR / "idp.mjs"),
        "--port=0",
        f"--client-id={CLIENT_ID}",
        f"--client-secret={CLIENT_SECRET}",
        f"--resource={RESOURCE}",
        "--alg=ES256",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        sys.exit(f"idp.mjs exited with {proc.returncode} before it was ready")
    return proc, json.loads(line)


def one_token(endpoint: str, basic: str) -> dict[str, Any]:
    request = urllib.request.Request(
        endpoint,
        data=FORM.encode(),
        headers={
            "authorization": f"Basic {basic}",
            "content-type": "application/x-www-form-urlencoded",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(out: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        "requests": int(re.search(r"(\d+) requests in", out)[1]),  # type: ignore[index]
    }
    for pct in ("50", "90", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.MULTILINE)
        if match:
            result[f"p{pct}_ms"] = round(_ms(match[1]), 3)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(errors[1]) if errors else 0
    sockets = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = sockets[1] if sockets else ""
    return result


def wrk(endpoint: str, basic: str, connections: int, duration: int) -> str:
    env = dict(os.environ, BENCH_BASIC=basic, BENCH_FORM=FORM)
    cmd = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(HERE / "token.lua"),
        endpoint,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk (apt-get install wrk)")
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    proc, ready = start_idp()
    try:
        endpoint = ready["token_endpoint"]
        token = one_token(endpoint, basic)
        if not token.get("access_token", "").startswith("eyJ"):
            sys.exit(f"the token endpoint did not issue a JWT: {token}")
        if args.warmup:
            wrk(endpoint, basic, args.connections, args.warmup)
        rss_before = rss_kib(proc.pid)
        out = wrk(endpoint, basic, args.connections, args.duration)
        result = parse_wrk(out)
        rss = rss_kib(proc.pid)
        result.update(
            {
                "server": "oidc-provider (node " + ready.get("node", "") + ")",
                "endpoint": "POST /token grant_type=client_credentials (ES256 JWT)",
                "connections": args.connections,
                "duration_s": args.duration,
                "rss_mib": round(rss["VmRSS"] / 1024, 1),
                "rss_peak_mib": round(rss["VmHWM"] / 1024, 1),
                "rss_before_mib": round(rss_before["VmRSS"] / 1024, 1),
            }
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    print(out.rstrip())
    print()
    print(
        f"oidc-provider client_credentials: {result['requests_per_second']:.0f} req/s, "
        f"p50 {result.get('p50_ms')} ms, p99 {result.get('p99_ms')} ms, "
        f"non-2xx {result['non_2xx']}, RSS {result['rss_mib']} MiB "
        f"(peak {result['rss_peak_mib']} MiB)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
