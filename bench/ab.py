"""Server-level A/B: this tree's forward-auth decision against another commit's, under the
same wrk load, in alternating short runs.

    bench/run ab --against HEAD~3                 # JWT, 8 rounds of 4 s per side
    bench/run ab --against HEAD~3 --credential api_key --rounds 10

On this shared host a single load run swings by +-30% with the minute; two instances of
one deployment (same config, database and keys), one per tree, measured in turns (the
order flipping every round) see the same drift, so the ratio of their medians shows a
change of ~5-10% that separate ``bench/run`` runs cannot. Each instance is granian serving
RSGI with one worker, as rows 1 and 2 of ``bench/run``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway import (
    PY,
    ROOT,
    Load,
    bench_overrides,
    check,
    config_for,
    make_deployment,
    parse_wrk,
    running,
)

from tests._services import free_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="the commit to compare with")
    parser.add_argument("--credential", choices=("jwt", "api_key"), default="jwt")
    parser.add_argument("--rounds", type=int, default=8, help="runs per side")
    parser.add_argument("--duration", type=int, default=4, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (-c)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bastion-ab-") as tmp:
        folder = Path(tmp)
        worktree = folder / "against"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", "-q", str(worktree), args.against], check=True)
        try:
            trees = {"this tree": ROOT / "src", args.against: worktree / "src"}
            results = compare(trees, folder, args)
        finally:
            subprocess.run([*git, "remove", "--force", str(worktree)], check=False)
    base = statistics.median(results[args.against][0])
    for name, (rps, p99) in results.items():
        median = statistics.median(rps)
        print(
            f"{name:<14} median {median:8.0f} req/s  ratio {median / base:5.3f}  "
            f"p99 median {statistics.median(p99):6.2f} ms  runs {[round(x) for x in rps]}"
        )
    return 0


def compare(
    trees: dict[str, Path], folder: Path, args: argparse.Namespace
) -> dict[str, tuple[list[float], list[float]]]:
    """Alternating wrk runs against one granian instance per tree."""
    upstream = "http://127.0.0.1:9"  # forward auth only: never called
    deployment = asyncio.run(
        make_deployment(folder / "bastion", upstream, **bench_overrides(free_port(), upstream))
    )
    credential = (
        {"Authorization": f"Bearer {deployment.jwt(exp=int(time.time()) + 3600)}"}
        if args.credential == "jwt"
        else {"X-API-Key": deployment.api_key}
    )
    headers = {**credential, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/orders/42?x=1"}
    load = Load(2, args.connections, args.duration, 1)
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in trees}
    with contextlib.ExitStack() as stack:
        urls = {}
        for n, (name, src) in enumerate(trees.items()):
            port = free_port()
            config = config_for(deployment, f"ab{n}", port, forward_auth_only=True)
            env = {"BASTION_CONFIG": str(config), "PYTHONPATH": str(src)}
            cmd = [
                PY, "-m", "granian", "--interface", "rsgi", "--factory", "--workers", "1",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--no-ws", "--loop", "uvloop", "bastion.gateway.app:from_env",
            ]  # fmt: skip
            stack.enter_context(
                running(cmd, port, log=folder / f"ab{n}.log", env={**os.environ, **env})
            )
            urls[name] = f"http://127.0.0.1:{port}/_bastion/auth"
            check(urls[name], headers)
            load.run(urls[name], headers, seconds=2)  # warm-up
        names = list(trees)
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                time.sleep(0.3)
                measured = parse_wrk(load.run(urls[name], headers))
                results[name][0].append(measured["rps"])
                results[name][1].append(measured["p99_ms"])
                print(f"  {name:<14} {measured['rps']:8.0f} req/s", flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
