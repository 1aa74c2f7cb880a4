"""The terminal: a live progress bar while scanning and a summary table at the end."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bastion.scan._model import ScanResult, Severity

STYLES = {
    Severity.CRITICAL: "bold magenta",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def summary(console: Console, result: ScanResult) -> None:
    if result.dry_run:
        table = Table(title=f"Dry run: {len(result.planned)} request(s) known before any answer")
        table.add_column("check")
        table.add_column("request", overflow="fold")
        for line in result.planned:
            check, _, request = line.partition("] ")
            table.add_row(check.lstrip("["), request)
        console.print(table)
        for check, note in result.plan_notes.items():
            console.print(f"[dim]{check}: {note}[/]")
        return
    table = Table(title=f"bastion scan of {result.target}", show_lines=False)
    for column in ("severity", "finding", "OWASP", "CWE", "endpoint"):
        table.add_column(column, overflow="fold")
    for f in result.findings:
        table.add_row(
            f"[{STYLES[f.severity]}]{f.severity.label}[/]",
            f.title,
            f.owasp.short,
            str(f.cwe),
            f.endpoint,
        )
    console.print(table)
    counts = {s: sum(1 for f in result.findings if f.severity == s) for s in Severity}
    line = ", ".join(f"{counts[s]} {s.label}" for s in sorted(Severity, reverse=True))
    console.print(
        f"{len(result.findings)} finding(s): {line}. "
        f"{result.requests_sent} requests in {result.elapsed_seconds:.1f}s."
    )
    for name, why in {**result.errors, **result.skipped}.items():
        console.print(f"[dim]not completed: {name}: {why}[/]")
