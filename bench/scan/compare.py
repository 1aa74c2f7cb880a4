"""Compare ``bastion scan`` with schemathesis (``ignored_auth``) and sqlmap (SQL injection)
on the rows where they overlap, against the same vulnerable lab API on 127.0.0.1.

    .venv/bin/pip install -r bench/scan/requirements.txt   # schemathesis
    apt-get install -y sqlmap
    .venv/bin/python bench/scan/compare.py

Each tool gets a fresh lab (tests/scan/vulnapi.py, the vulnerable variant) and the same
bearer token; "requests" are counted by the lab itself, so every tool is measured the
same way. bastion runs unpaced here (``--rps`` is 20 by default) like the other two.
sqlmap: ``--batch --level 1 --risk 1 --technique=BE``, one run per injectable surface
bastion probes (the query parameter and the path parameter of /products), 300 s bound.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bastion.scan import ScanConfig, parse_auth, run_scan  # noqa: E402
from tests.scan._servers import ServerThread  # noqa: E402
from tests.scan.vulnapi import API, VulnConfig, make_app, spec  # noqa: E402

BOUND = 300  # seconds per external tool run


@dataclass
class Row:
    tool: str
    row: str
    seconds: float
    requests: int
    findings: list[str]


class Lab:
    """A fresh vulnerable lab; counts the requests that reach it."""

    def __enter__(self) -> Lab:
        app, self.state = make_app(VulnConfig(vulnerable=True))
        self.server = ServerThread(app).start()
        self.url = self.server.url
        reply = httpx.post(
            f"{self.url}{API.lstrip('/')}/login",
            json={"username": "alice", "password": "wonderland"},
        )
        self.token = str(reply.json()["access_token"])
        self.before = len(self.state.requests)
        return self

    @property
    def sent(self) -> int:
        return len(self.state.requests) - self.before

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def bastion(check: str, row: str) -> Row:
    with Lab() as lab:
        config = ScanConfig(
            base_url=lab.url,
            identities=[parse_auth(f"alice=bearer:{lab.token}")],
            openapi_text=json.dumps(spec(VulnConfig())),
            checks=[check],
            rps=0,
        )
        started = time.monotonic()
        result = asyncio.run(run_scan(config))
        seconds = time.monotonic() - started
        found = [f.endpoint.removeprefix(lab.url.rstrip("/")) for f in result.findings]
        return Row("bastion scan", row, seconds, lab.sent, found)


def schemathesis() -> Row:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if exe is None:
        return Row("schemathesis", "ignored auth", 0, 0, ["(not installed)"])
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [
            exe,
            "run",
            f"{lab.url}openapi.json",
            "--checks",
            "ignored_auth",
            "--header",
            f"Authorization: Bearer {lab.token}",
            "--max-examples",
            "5",
            "--seed",
            "1",
            "--no-shrink",
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
        ]
        started = time.monotonic()
        subprocess.run(cmd, capture_output=True, timeout=BOUND, check=False)
        seconds = time.monotonic() - started
        failed = [
            case.get("name", "?")
            for case in ET.parse(junit).iter("testcase")  # noqa: S314 - our own run's file
            if case.find("failure") is not None
        ]
        return Row("schemathesis", "ignored auth (ignored_auth)", seconds, lab.sent, failed)


def sqlmap() -> Row:
    exe = shutil.which("sqlmap")
    if exe is None:
        return Row("sqlmap", "SQL injection", 0, 0, ["(not installed)"])
    found: list[str] = []
    seconds = 0.0
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        for url in (f"{lab.url}api/v2/products?category=books", f"{lab.url}api/v2/products/3*"):
            cmd = [
                exe,
                "-u",
                url,
                "--batch",
                "--level",
                "1",
                "--risk",
                "1",
                "--technique=BE",
                "--flush-session",
                "--output-dir",
                tmp,
                "--disable-coloring",
                "-H",
                f"Authorization: Bearer {lab.token}",
            ]
            started = time.monotonic()
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=BOUND, check=False)
            seconds += time.monotonic() - started
            found += [
                line.strip() for line in out.stdout.splitlines() if line.startswith("Parameter: ")
            ]
        return Row("sqlmap", "SQL injection (--technique=BE)", seconds, lab.sent, found)


def main() -> None:
    rows = [
        bastion("unauthenticated_access", "ignored auth (unauthenticated_access)"),
        schemathesis(),
        bastion("sql_injection", "SQL injection (sql_injection)"),
        sqlmap(),
    ]
    print(f"{'tool':14} {'row':40} {'time':>8} {'requests':>9}  findings")
    for r in rows:
        print(f"{r.tool:14} {r.row:40} {r.seconds:7.2f}s {r.requests:9}  {len(r.findings)}")
        for f in r.findings:
            print(f"{'':14} {'':40} {'':8} {'':9}  - {f}")


if __name__ == "__main__":
    main()
