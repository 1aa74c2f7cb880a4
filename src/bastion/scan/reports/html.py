"""A self-contained HTML report: inline CSS and SVG charts, no external asset, autoescaped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import jinja2

from bastion.scan._model import Owasp, ScanResult, Severity

COLORS = {
    Severity.CRITICAL: "#7b1fa2",
    Severity.HIGH: "#c62828",
    Severity.MEDIUM: "#ef6c00",
    Severity.LOW: "#f9a825",
    Severity.INFO: "#546e7a",
}


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    width: float
    color: str


def _bars(counts: list[tuple[str, int, str]], scale: float = 360.0) -> list[Bar]:
    top = max((c for _l, c, _k in counts), default=0) or 1
    return [Bar(label, count, scale * count / top, color) for label, count, color in counts]


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("bastion.scan.reports", "templates"),
    autoescape=True,  # target-controlled text (bodies, headers) is rendered in this page
    undefined=jinja2.StrictUndefined,
)


def render_html(result: ScanResult) -> str:
    by_sev = Counter(f.severity for f in result.findings)
    by_owasp = Counter(f.owasp for f in result.findings)
    sev_bars = _bars(
        [(s.label, by_sev.get(s, 0), COLORS[s]) for s in sorted(Severity, reverse=True)]
    )
    owasp_bars = _bars([(o.value, by_owasp.get(o, 0), "#1565c0") for o in Owasp])
    template = _ENV.get_template("report.html.j2")
    return template.render(
        result=result,
        findings=result.findings,
        sev_bars=sev_bars,
        owasp_bars=owasp_bars,
        colors={s.label: c for s, c in COLORS.items()},
    )
