"""Reports: SARIF validates against the OASIS schema, JSON round-trips, HTML is safe."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from bastion.scan import FORMATS, ScanResult
from bastion.scan.reports.json_report import load_findings
from tests.scan.vulnapi import XSS

SCHEMA = Path(__file__).with_name("sarif-schema-2.1.0.json")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_sarif_validates_against_the_sarif_2_1_0_schema(
    lab_results: dict[str, ScanResult],
) -> None:
    log = json.loads(FORMATS["sarif"](lab_results["vuln"]))
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).validate(log)
    run = log["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert run["results"]
    for result in run["results"]:
        rule = rules[result["ruleId"]]  # every result has its rule, with what GitHub reads
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]] is rule
        assert float(rule["properties"]["security-severity"]) >= 0
        assert rule["help"]["text"]
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri.startswith("http://127.0.0.1:")


def test_sarif_of_a_clean_scan_is_valid_and_empty(lab_results: dict[str, ScanResult]) -> None:
    log = json.loads(FORMATS["sarif"](lab_results["fixed"]))
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).validate(log)
    assert log["runs"][0]["results"] == []


def test_json_round_trips(lab_results: dict[str, ScanResult]) -> None:
    result = lab_results["vuln"]
    text = FORMATS["json"](result)
    assert load_findings(text) == result.findings
    data = json.loads(text)
    assert data["requests_sent"] == result.requests_sent
    assert {f["severity"] for f in data["findings"]} >= {"critical", "high", "medium", "low"}


def test_html_is_self_contained_and_escapes_the_target(
    lab_results: dict[str, ScanResult],
) -> None:
    result = lab_results["vuln"]
    page = FORMATS["html"](result)
    # The target's hostile text made it into the evidence...
    assert any(XSS in e.response for f in result.findings for e in f.evidence)
    # ...and comes out escaped, never as markup.
    assert XSS not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert re.search(r"""(src|href)\s*=\s*["']?https?://""", page, re.I) is None
    assert "<script" not in page.lower()
    assert "<svg" in page  # the charts are inline
    for title in ("Findings by severity", "OWASP"):
        assert title in page


def test_html_renders_in_chromium(lab_results: dict[str, ScanResult], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    page = tmp_path / "scan-report.html"
    page.write_text(FORMATS["html"](lab_results["vuln"]), encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "scan-report.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=False,
        capture_output=True,
        timeout=60,
    )
    assert shot.exists()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
