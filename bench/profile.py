"""Profile bastion's worker under wrk load with py-spy and print the top costs.

    .venv/bin/pip install py-spy        # not a project dependency
    .venv/bin/python bench/profile.py --scenario jwt --server granian --duration 10

Scenarios: ``jwt`` / ``key`` (forward-auth decision), ``proxy`` (proxy front door, API
key). The busiest process of ``bastion serve``'s tree is sampled (granian runs the app
in a child process) while wrk loads it; self time and inclusive time per function are
printed, and the raw collapsed stacks are kept for flame graphs.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from gateway import (  # noqa: E402
    PY,
    Load,
    _session_pids,
    bastion,
    bench_overrides,
    config_for,
    make_deployment,
    running,
)

from tests._services import free_port  # noqa: E402


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def top(raw: Path, n: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";") if f]
        total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    out = [f"{total} samples", "", "self %  function"]
    out += [f"{100 * c / total:5.1f}  {f}" for f, c in own.most_common(n)]
    out += ["", "incl % function"]
    out += [f"{100 * c / total:5.1f}  {f}" for f, c in inclusive.most_common(n)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=["jwt", "key", "proxy"], default="jwt")
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--out", type=Path, default=None, help="keep raw stacks here")
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(PY).with_name("py-spy"))
    folder = Path(tempfile.mkdtemp(prefix="bastion-profile-"))
    up_port, port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    deployment = asyncio.run(
        make_deployment(folder / "bastion", upstream, **bench_overrides(port, upstream))
    )
    token = deployment.jwt(exp=int(time.time()) + 3600)
    fwd = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/orders/42?x=1"}
    if args.scenario == "jwt":
        path, headers = "/_bastion/auth", {**fwd, "Authorization": f"Bearer {token}"}
    elif args.scenario == "key":
        path, headers = "/_bastion/auth", {**fwd, "X-API-Key": deployment.api_key}
    else:
        path, headers = "/api/orders/42", {"X-API-Key": deployment.api_key}
    raw = args.out or folder / "stacks.txt"
    load = Load(args.threads, 64, args.duration, 2)
    demo = [PY, "-m", "bastion.demo", "--port", str(up_port)]
    config = config_for(deployment, args.server, port, forward_auth_only=args.scenario != "proxy")
    with running(demo, up_port), bastion(config, port, args.server) as sid:
        url = f"http://127.0.0.1:{port}{path}"
        load.run(url, headers, seconds=2)
        before = {p: cpu_ticks(p) for p in _session_pids(sid)}
        load.run(url, headers, seconds=2)
        worker = max(before, key=lambda p: cpu_ticks(p) - before[p])
        cmd = [pyspy, "record", "--pid", str(worker), "--duration", str(args.duration)]
        cmd += ["--rate", str(args.rate), "--format", "raw", "--output", str(raw), "--nonblocking"]
        if args.native:
            cmd.append("--native")
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out = load.run(url, headers, seconds=args.duration)
        spy.wait(timeout=args.duration + 30)
    print(out)
    print(f"worker pid {worker}; stacks in {raw}")
    print(top(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
