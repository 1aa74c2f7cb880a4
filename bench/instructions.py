"""Instructions per forward-auth request, counted by valgrind's callgrind: the same count
for the same code whatever else the machine is doing, so a 2% change shows, where the
load runs swing by +-30% on this shared host (docs/benchmarks.md).

    bench/run instructions                   # this tree
    bench/run instructions --against HEAD~3  # and another commit, side by side

Each row runs in its own ``valgrind --tool=callgrind`` process that counts only the
measured loop (collection switched on and off around it with ``callgrind_control``):
bastion's RSGI app answering forward-auth requests as granian would call it (a JWT
verified before, an API key whose record is cached), beside two baselines in the same
command: an RSGI app that only answers 200 (what the harness itself costs) and PyJWT
verifying the same ES256 token (what baseline B pays per request). Instructions are not
seconds (a cache miss costs more than an add; SHA-256 and ECDSA run without the CPU's
SHA extensions under valgrind, so they count high): use this to compare trees, the load
runs to judge the targets. A count now and then comes out ~10% high (a rate-limit window
or a collection falling inside the counted loop): each row is the median of three.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "jwt": "bastion RSGI forward auth, ES256 JWT (verified before)",
    "api_key": "bastion RSGI forward auth, API key (record cached)",
    "bare": "baseline: RSGI app that only answers 200",
    "pyjwt": "baseline: PyJWT ES256 decode, key parsed once",
}
_COLLECTED = re.compile(r"Collected : (\d+)")


class _Reply:
    status = 0

    def response_empty(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.status = status


def _toggle(state: str) -> None:
    subprocess.run(
        ["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True
    )


async def _child(scenario: str, folder: Path, requests: int) -> None:
    """Run inside valgrind: warm up, then count ``requests`` calls of one scenario."""
    import bastion
    from bastion.config import load_config
    from bastion.gateway.app import GatewayApp
    from bastion.gateway.runtime import Runtime
    from tests.gateway.rsgi_fake import scope as rsgi_scope

    src = os.environ["PYTHONPATH"].split(os.pathsep)[0]
    if not bastion.__file__ or not bastion.__file__.startswith(src):
        raise SystemExit(f"bastion imported from {bastion.__file__}, not {src}")
    spec = json.loads((folder / "spec.json").read_text())
    os.chdir(folder)
    runtime = await Runtime.start(load_config(spec["config"]))
    app = GatewayApp(runtime.config, runtime)
    forwarded = {"x-forwarded-method": "GET", "x-forwarded-uri": "/api/orders/42?x=1"}
    credential = (
        {"x-api-key": spec["api_key"]}
        if scenario == "api_key"
        else {"authorization": f"Bearer {spec['token']}"}
    )
    request = rsgi_scope("GET", "/_bastion/auth", {**forwarded, "user-agent": "wrk", **credential})
    reply = _Reply()
    call: Any
    if scenario == "pyjwt":
        import jwt

        key = jwt.PyJWK.from_dict(json.loads(spec["jwk"]))
        token = spec["token"]

        async def call() -> None:
            jwt.decode(token, key, algorithms=["ES256"], audience=spec["aud"], issuer=spec["iss"])

    elif scenario == "bare":

        async def call() -> None:
            reply.response_empty(200, [])

    else:

        async def call() -> None:
            await app.__rsgi__(request, reply)

    for _ in range(300):
        await call()
    if scenario in ("jwt", "api_key") and reply.status != 200:
        raise SystemExit(f"{scenario}: forward auth answered {reply.status}, expected 200")
    import gc

    gc.collect()
    gc.freeze()  # as the worker does after start-up: no full collection of the set-up
    _toggle("on")
    for _ in range(requests):
        await call()
    _toggle("off")
    await runtime.aclose()


def _deployment(folder: Path) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from gateway import bench_overrides

    from tests._deploy import AUDIENCE, ISSUER, make_deployment

    upstream = "http://127.0.0.1:9"
    deployment = asyncio.run(make_deployment(folder, upstream, **bench_overrides(8080, upstream)))
    spec = {
        "config": str(deployment.config_file),
        "token": deployment.jwt(exp=int(time.time()) + 7 * 86400),
        "api_key": deployment.api_key,
        "jwk": json.dumps(deployment.issuer_key.as_dict(private=False)),
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    (folder / "spec.json").write_text(json.dumps(spec))


def count(src: Path, scenario: str, folder: Path, requests: int) -> float:
    """Instructions per call of ``scenario`` with bastion imported from ``src``."""
    cmd = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null",
        sys.executable, __file__, "--child", scenario, "--folder", str(folder),
        "--requests", str(requests),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    found = _COLLECTED.findall(done.stderr)
    if done.returncode != 0 or not found:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise SystemExit(f"{scenario} under callgrind failed:\n{tail}")
    return int(found[-1]) / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="also count this commit (a temporary git worktree)")
    parser.add_argument("--requests", type=int, default=2000, help="calls counted per row")
    parser.add_argument("--repeat", type=int, default=3, help="counts per row; the median is shown")
    parser.add_argument("--child", choices=sorted(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args.child, args.folder, args.requests))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    trees = {"this tree": ROOT / "src"}
    with tempfile.TemporaryDirectory(prefix="bastion-instr-") as tmp:
        folder = Path(tmp) / "deployment"
        _deployment(folder)
        worktree = Path(tmp) / "against"
        if args.against:
            git = ["git", "-C", str(ROOT), "worktree"]
            subprocess.run([*git, "add", "--detach", "-q", str(worktree), args.against], check=True)
            trees[args.against] = worktree / "src"
        try:
            header = f"{'instructions per call (callgrind)':<56}" + "".join(
                f"{name:>14}" for name in trees
            )
            print(header + (f"{'ratio':>8}" if args.against else ""), flush=True)
            for scenario, label in SCENARIOS.items():
                counts = [
                    statistics.median(
                        count(src, scenario, folder, args.requests) for _ in range(args.repeat)
                    )
                    for src in trees.values()
                ]
                line = f"{label:<56}" + "".join(f"{n:>14,.0f}" for n in counts)
                if args.against:
                    line += f"{counts[0] / counts[1]:>8.3f}"
                print(line, flush=True)
        finally:
            if args.against:
                subprocess.run([*git, "remove", "--force", str(worktree)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
