"""What a check is: metadata for the report and one coroutine that probes and decides."""

from __future__ import annotations

from typing import ClassVar

from bastion.scan._context import ScanContext
from bastion.scan._model import CheckInfo, Evidence, Finding, Owasp, Severity


class Check:
    """Base of every check. Subclasses set the class attributes and write ``run``.

    ``phase`` orders the scan: 0 per-origin probes and 1 read-only probes (each phase run
    concurrently); 2 probes that change the identities' own objects and 3 noisy probes
    that may trip the target's limits (run last, one check at a time).
    """

    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity]
    owasp: ClassVar[Owasp]
    cwe: ClassVar[int]
    why: ClassVar[str]
    fix: ClassVar[str]
    phase: ClassVar[int] = 1
    # What a dry run cannot list for this check: probes chosen from earlier answers.
    # Empty when the dry-run plan is the check's whole request list.
    depends_on_answers: ClassVar[str] = "later probes (and how many) depend on the answers to these"

    @classmethod
    def info(cls) -> CheckInfo:
        return CheckInfo(cls.id, cls.title, cls.severity, cls.owasp, cls.cwe, cls.why, cls.fix)

    async def run(self, ctx: ScanContext) -> None:
        raise NotImplementedError

    def finding(
        self,
        endpoint: str,
        evidence: list[Evidence] | tuple[Evidence, ...],
        *,
        title: str | None = None,
        severity: Severity | None = None,
        detail: str = "",
    ) -> Finding:
        return Finding(
            check=self.id,
            title=title or self.title,
            severity=severity if severity is not None else self.severity,
            owasp=self.owasp,
            cwe=self.cwe,
            endpoint=endpoint,
            why=self.why,
            fix=self.fix,
            evidence=tuple(evidence),
            detail=detail,
        )
