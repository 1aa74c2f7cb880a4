"""The scanner's plain values: severities, OWASP API 2023 categories, evidence, findings."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """How bad a finding is; ordered so ``>=`` answers ``--fail-on``."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def security_severity(self) -> str:
        """The CVSS-like score GitHub code scanning reads from ``security-severity``."""
        return {0: "0.0", 1: "3.0", 2: "5.5", 3: "8.0", 4: "9.5"}[int(self)]

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of {names})") from None


class Owasp(enum.StrEnum):
    """OWASP API Security Top 10 (2023) categories."""

    API1 = "API1:2023 Broken Object Level Authorization"
    API2 = "API2:2023 Broken Authentication"
    API3 = "API3:2023 Broken Object Property Level Authorization"
    API4 = "API4:2023 Unrestricted Resource Consumption"
    API5 = "API5:2023 Broken Function Level Authorization"
    API6 = "API6:2023 Unrestricted Access to Sensitive Business Flows"
    API7 = "API7:2023 Server Side Request Forgery"
    API8 = "API8:2023 Security Misconfiguration"
    API9 = "API9:2023 Improper Inventory Management"
    API10 = "API10:2023 Unsafe Consumption of APIs"

    @property
    def short(self) -> str:
        return self.value.split(" ", 1)[0]


@dataclass(frozen=True)
class Evidence:
    """One exchange that shows the flaw; texts are already redacted and excerpted."""

    request: str
    response: str
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"request": self.request, "response": self.response, "note": self.note}


@dataclass(frozen=True)
class Finding:
    """A flaw the scanner proved, with what it saw and what to do about it."""

    check: str
    title: str
    severity: Severity
    owasp: Owasp
    cwe: int
    endpoint: str
    why: str
    fix: str
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)
    detail: str = ""

    @property
    def id(self) -> str:
        """Stable across runs: the same flaw at the same place has the same id."""
        digest = hashlib.sha256(f"{self.check}|{self.title}|{self.endpoint}".encode())
        return f"{self.check}-{digest.hexdigest()[:10]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "title": self.title,
            "severity": self.severity.label,
            "owasp": self.owasp.value,
            "cwe": self.cwe,
            "endpoint": self.endpoint,
            "detail": self.detail,
            "why": self.why,
            "fix": self.fix,
            "evidence": [e.to_dict() for e in self.evidence],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            check=str(data["check"]),
            title=str(data["title"]),
            severity=Severity.parse(str(data["severity"])),
            owasp=Owasp(str(data["owasp"])),
            cwe=int(data["cwe"]),
            endpoint=str(data["endpoint"]),
            why=str(data["why"]),
            fix=str(data["fix"]),
            evidence=tuple(
                Evidence(str(e["request"]), str(e["response"]), str(e.get("note", "")))
                for e in data.get("evidence", [])
            ),
            detail=str(data.get("detail", "")),
        )


@dataclass(frozen=True)
class CheckInfo:
    """What a check is, for reports (SARIF rules, the HTML legend)."""

    id: str
    title: str
    severity: Severity
    owasp: Owasp
    cwe: int
    why: str
    fix: str


@dataclass
class ScanResult:
    """Everything one scan produced."""

    target: str
    findings: list[Finding]
    checks: list[CheckInfo]
    requests_sent: int = 0
    elapsed_seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    planned: list[str] = field(default_factory=list)
    plan_notes: dict[str, str] = field(default_factory=dict)  # check id -> what is not listed
    dry_run: bool = False

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": "bastion scan",
            "target": self.target,
            "dry_run": self.dry_run,
            "requests_sent": self.requests_sent,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "checks": [c.id for c in self.checks],
            "errors": self.errors,
            "skipped": self.skipped,
            "planned": self.planned,
            "plan_notes": self.plan_notes,
            "findings": [f.to_dict() for f in self.findings],
        }
