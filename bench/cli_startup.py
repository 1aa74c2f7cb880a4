"""How long a ``bastion`` command takes to start, beside ``python -c pass``.

Every command paid 1.6-2 s before it did anything, ``--help`` included: importing the
command line loaded SQLAlchemy, the store and the scanner for every subcommand. Each
now imports what it needs when it runs; ``bastion --help`` should stay under 0.3 s.
tests/cli/test_startup.py holds the cause (what ``import bastion.cli`` loads); this
measures the effect, which no test times.

    bench/run cli                     # from bench/.venv (see bench/run)
    .venv/bin/python bench/cli_startup.py [--runs 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUDGET_SECONDS = 0.3  # `bastion --help`
CASES = {
    "python -c pass (baseline)": ["-c", "pass"],
    "import bastion.cli": ["-c", "import bastion.cli"],
    "bastion --help": ["-m", "bastion.cli", "--help"],
    "bastion --version": ["-m", "bastion.cli", "--version"],
    "bastion keys list --help": ["-m", "bastion.cli", "keys", "list", "--help"],
    "bastion scan --help": ["-m", "bastion.cli", "scan", "--help"],
}


def median_seconds(args: list[str], runs: int) -> float:
    """The median wall time of ``runs`` fresh interpreters running ``args``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per case (median)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args(argv)
    for args in CASES.values():  # warm the file cache and the bytecode
        subprocess.run([sys.executable, *args], check=True, capture_output=True)
    figures = {name: median_seconds(args, options.runs) for name, args in CASES.items()}
    base = figures["python -c pass (baseline)"]
    print(f"{'case':<32} {'median s':>9} {'over baseline':>14}   ({sys.executable})")
    for name, seconds in figures.items():
        print(f"{name:<32} {seconds:>9.3f} {seconds - base:>+13.3f}s")
    helped = figures["bastion --help"]
    verdict = "within" if helped < BUDGET_SECONDS else "OVER"
    print(f"bastion --help: {helped:.3f} s, {verdict} the {BUDGET_SECONDS} s budget")
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if helped < BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
