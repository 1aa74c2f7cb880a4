"""SARIF 2.1.0 (OASIS) for GitHub code scanning: one rule per check, one result per finding."""

from __future__ import annotations

import json
from typing import Any

from bastion.scan._model import CheckInfo, Finding, ScanResult, Severity

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _level(severity: Severity) -> str:
    if severity >= Severity.HIGH:
        return "error"
    return "warning" if severity == Severity.MEDIUM else "note"


def _rule(info: CheckInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": "".join(p.capitalize() for p in info.id.split("_")),
        "shortDescription": {"text": info.title},
        "fullDescription": {"text": info.why},
        "help": {
            "text": f"{info.why}\n\nHow to fix: {info.fix}",
            "markdown": f"{info.why}\n\n**How to fix:** {info.fix}\n\n"
            f"{info.owasp.value}, CWE-{info.cwe}",
        },
        "defaultConfiguration": {"level": _level(info.severity)},
        "properties": {
            "security-severity": info.severity.security_severity,
            "precision": "high",
            "problem.severity": "error" if info.severity >= Severity.HIGH else "warning",
            "tags": ["security", info.owasp.short, f"external/cwe/cwe-{info.cwe}"],
        },
    }


def _result(finding: Finding, index: int) -> dict[str, Any]:
    text = finding.title + (f" - {finding.detail}" if finding.detail else "")
    if finding.evidence and finding.evidence[0].note:
        text += f"\n\nEvidence: {finding.evidence[0].note}"
    return {
        "ruleId": finding.check,
        "ruleIndex": index,
        "level": _level(finding.severity),
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": finding.endpoint}},
                "message": {"text": finding.endpoint},
            }
        ],
        "partialFingerprints": {"bastionFindingId": finding.id},
        "properties": {
            "security-severity": finding.severity.security_severity,
            "severity": finding.severity.label,
            "owasp": finding.owasp.value,
            "cwe": f"CWE-{finding.cwe}",
            "evidence": [e.to_dict() for e in finding.evidence],
            "fix": finding.fix,
        },
    }


def render_sarif(result: ScanResult) -> str:
    infos = {c.id: c for c in result.checks}
    for finding in result.findings:  # findings loaded from elsewhere still get a rule
        if finding.check not in infos:
            infos[finding.check] = CheckInfo(
                finding.check,
                finding.title,
                finding.severity,
                finding.owasp,
                finding.cwe,
                finding.why,
                finding.fix,
            )
    order = list(infos)
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion-scan",
                        "semanticVersion": "0.1.0",
                        "rules": [_rule(infos[i]) for i in order],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "properties": {
                            "target": result.target,
                            "requestsSent": result.requests_sent,
                        },
                    }
                ],
                "results": [_result(f, order.index(f.check)) for f in result.findings],
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"
