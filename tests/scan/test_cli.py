"""``bastion scan`` on the command line: exit codes, formats, --self, --dry-run."""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.cli.scan import self_target
from tests._services import free_port
from tests.scan._servers import ServerThread
from tests.scan.vulnapi import API, State, VulnConfig, make_app

runner = CliRunner()


@pytest.fixture(scope="module")
def pair() -> Iterator[dict[str, tuple[str, State]]]:
    out = {}
    servers = []
    for name, vulnerable in (("vuln", True), ("fixed", False)):
        application, state = make_app(VulnConfig(vulnerable=vulnerable))
        server = ServerThread(application).start()
        servers.append(server)
        out[name] = (server.url, state)
    yield out
    for server in servers:
        server.stop()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["ftp://example.test/"],
        ["http://127.0.0.1:1/", "--auth", "alice"],
        ["http://127.0.0.1:1/", "--auth", "alice=magic:x"],
        ["http://127.0.0.1:1/", "--login", "alice=login"],
        ["http://127.0.0.1:1/", "--checks", "no_such_check"],
        ["http://127.0.0.1:1/", "--fail-on", "severe"],
        ["http://127.0.0.1:1/", "--format", "pdf"],
        ["http://127.0.0.1:1/", "--admin", "nobody"],
        ["http://127.0.0.1:1/", "--auth", "a=bearer:x", "--auth", "a=bearer:y"],
        ["http://127.0.0.1:1/", "--openapi", "/nonexistent/spec.json"],
        ["--self", "--config", "/nonexistent/bastion.yaml"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, ["scan", "--quiet", *args])
    assert result.exit_code == 2, result.output


def test_fail_on_exits_1_with_a_finding_at_or_above(
    pair: dict[str, tuple[str, State]], tmp_path: Path
) -> None:
    url, _ = pair["vuln"]
    out = tmp_path / "scan.sarif"
    login = f"alice={API}/login?username=alice&password=wonderland"
    args = [
        "scan",
        url,
        "--login",
        login,
        "--checks",
        "cors,trace_method",
        "--rps",
        "50",
        "--format",
        "sarif",
        "--output",
        str(out),
        "--fail-on",
    ]
    assert runner.invoke(app, [*args, "high"]).exit_code == 1
    assert runner.invoke(app, [*args, "critical"]).exit_code == 0
    log = json.loads(out.read_text())
    assert {r["ruleId"] for r in log["runs"][0]["results"]} == {"cors", "trace_method"}


def test_clean_target_exits_0_and_prints_json(pair: dict[str, tuple[str, State]]) -> None:
    url, _ = pair["fixed"]
    result = runner.invoke(
        app,
        [
            "scan",
            url,
            "--quiet",
            "--checks",
            "cors,trace_method",
            "--format",
            "json",
            "--fail-on",
            "info",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["findings"] == []


def test_terminal_summary_lists_findings(pair: dict[str, tuple[str, State]]) -> None:
    url, _ = pair["vuln"]
    result = runner.invoke(app, ["scan", url, "--checks", "trace_method,version_disclosure"])
    assert result.exit_code == 0
    assert "HTTP TRACE enabled" in result.output
    assert "finding(s)" in result.output


def test_dry_run_from_the_cli_sends_nothing(pair: dict[str, tuple[str, State]]) -> None:
    url, state = pair["vuln"]
    before = len(state.requests)
    result = runner.invoke(app, ["scan", url, "--dry-run", "--format", "json", "--quiet"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["planned"]
    assert len(state.requests) == before


def test_self_scan_derives_the_url_from_bastion_yaml(
    pair: dict[str, tuple[str, State]], tmp_path: Path
) -> None:
    url, state = pair["fixed"]
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    config = tmp_path / "bastion.yaml"
    config.write_text(f"listen:\n  host: 0.0.0.0\n  port: {port}\n")
    assert self_target(config) == (f"http://127.0.0.1:{port}/", None)
    before = len(state.requests)
    result = runner.invoke(
        app, ["scan", "--self", "--config", str(config), "--dry-run", "--format", "json", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)["planned"]
    assert planned
    assert all(f"127.0.0.1:{port}" in line for line in planned)
    assert len(state.requests) == before


class _Rude(socketserver.BaseRequestHandler):
    """Accepts each connection and gives no HTTP answer on it."""

    def handle(self) -> None:
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "garbage":  # another protocol on the port
            self.request.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        elif mode == "reset":  # a connection reset instead of a close
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # "close": closed at once, nothing sent


@contextmanager
def rude_server(mode: str) -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Rude)
    server.daemon_threads = True
    server.mode = mode  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _unreachable(url: str) -> str:
    result = runner.invoke(app, ["scan", url, "--fail-on", "low", "--rps", "200"])
    out = " ".join(result.output.split())
    assert result.exit_code == 2, out
    assert "finding(s)" not in out  # no report of a scan that never happened
    assert f"error: {url} answered none of the" in out
    return out


def test_nothing_listening_is_an_error_not_a_clean_scan() -> None:
    out = _unreachable(f"http://127.0.0.1:{free_port()}/")
    assert "(last: Connection refused)" in out
    assert "is it running, and is the URL right?" in out


@pytest.mark.parametrize("mode", ["close", "reset", "garbage"])
def test_a_target_that_never_answers_http_is_an_error(mode: str) -> None:
    with rude_server(mode) as url:
        _unreachable(url)


def test_a_target_that_never_answers_in_time_is_an_error(tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.txt"
    endpoints.write_text("GET /api/orders\n")
    with socket.socket() as silent:  # accepts (the backlog) and never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        args = ["scan", url, "--endpoints", str(endpoints), "--checks", "trace_method"]
        result = runner.invoke(app, [*args, "--timeout", "0.5", "--rps", "200"])
    out = " ".join(result.output.split())
    assert result.exit_code == 2, out
    assert "answered none of the" in out
    assert "no whole answer within 0.5 s" in out


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("--openapi", "missing.json", "No such file or directory"),
        ("--openapi", "folder", "Is a directory"),
        ("--openapi", "binary.json", "not UTF-8 text"),
        ("--endpoints", "missing.txt", "No such file or directory"),
        ("--jwt-wordlist", "missing.txt", "No such file or directory"),
        ("--ca-bundle", "missing.pem", "No such file or directory"),
        ("--ca-bundle", "binary.json", "NO_CERTIFICATE_OR_CRL_FOUND"),
    ],
)
def test_a_file_option_that_cannot_be_read_says_why_in_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, value: str, reason: str
) -> None:
    # `--openapi missing.json` printed Python's "[Errno 2] No such file or directory".
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    result = runner.invoke(app, ["scan", "http://127.0.0.1:1/", "--quiet", option, value])
    out = " ".join(result.output.split())
    assert result.exit_code == 2, out
    assert f"error: {option} {value}: {reason}" in out
    assert "Errno" not in out


def test_an_output_folder_that_does_not_exist_is_refused_before_the_scan(
    pair: dict[str, tuple[str, State]], tmp_path: Path
) -> None:
    url, state = pair["fixed"]
    before = len(state.requests)
    report = tmp_path / "no" / "report.json"
    result = runner.invoke(app, ["scan", url, "--format", "json", "--output", str(report)])
    assert result.exit_code == 2
    assert f"--output {report}: no folder {report.parent}" in " ".join(result.output.split())
    assert len(state.requests) == before  # refused before a request was sent
