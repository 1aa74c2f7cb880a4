"""The scan as JSON: the machine-readable report that round-trips into ``ScanResult``."""

from __future__ import annotations

import json as _json
from typing import Any

from bastion.scan._model import Finding, ScanResult


def render_json(result: ScanResult) -> str:
    return _json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"


def load_findings(text: str) -> list[Finding]:
    """Findings back from a JSON report."""
    data: dict[str, Any] = _json.loads(text)
    return [Finding.from_dict(f) for f in data.get("findings", [])]
