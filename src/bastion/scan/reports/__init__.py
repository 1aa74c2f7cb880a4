"""Scan reports: JSON, SARIF 2.1.0, a self-contained HTML page, and the terminal summary."""

from __future__ import annotations

from bastion.scan.reports.html import render_html
from bastion.scan.reports.json_report import render_json
from bastion.scan.reports.sarif import render_sarif

FORMATS = {"json": render_json, "sarif": render_sarif, "html": render_html}

__all__ = ["FORMATS", "render_html", "render_json", "render_sarif"]
