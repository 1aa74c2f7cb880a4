"""The README's quickstart: `bastion demo` starts a gateway in front of an echo API and
prints curl lines; every printed line does what its comment says."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._procs import stop
from tests._services import free_port, port_open


def test_demo_prints_curl_lines_that_work(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    port, upstream_port = free_port(), free_port()
    out = tmp_path / "out.txt"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "400"}
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "bastion.cli", "demo",
                "--dir", str(tmp_path / "demo"),
                "--port", str(port),
                "--upstream-port", str(upstream_port),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (port_open(port) and port_open(upstream_port)):
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        text = out.read_text()
        pairs = re.findall(r"^# (.+?)\n(curl .+)$", text, flags=re.MULTILINE)
        assert len(pairs) >= 10, text
        checked = 0
        for comment, command in pairs:
            expected = re.search(r"\((\d{3})", comment)
            if expected is None or "|" in command:
                continue
            args = [a for a in shlex.split(command) if a != "-i"]
            result = subprocess.run(
                [*args, "-s", "-o", "/dev/null", "-w", "%{http_code}"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            assert result.stdout == expected.group(1), (comment, command)
            checked += 1
        assert checked >= 9
        audit_file = tmp_path / "demo" / "audit.log"
        deadline = time.monotonic() + 5  # the audit log is flushed at least once a second
        while '"outcome":"allow"' not in audit_file.read_text():
            assert time.monotonic() < deadline, "no allow decision in the audit log"
            time.sleep(0.1)
    finally:
        stop(proc)
