"""The scanner's exceptions, under bastion's root error."""

from __future__ import annotations

from bastion.errors import BastionError


class ScanError(BastionError):
    """Root of the scanner's errors."""

    code = "scan_error"
    title = "Scan error"


class OriginRefused(ScanError):
    """A probe tried to reach a host other than the target's origin."""

    code = "origin_refused"


class BudgetExhausted(ScanError):
    """The request budget (``--max-requests``) is spent."""

    code = "budget_exhausted"


class DryRun(ScanError):
    """Raised after a dry run records a request instead of sending it."""

    code = "dry_run"


class SpecError(ScanError):
    """The OpenAPI document could not be read or understood."""

    code = "spec_error"


class TargetUnreachable(ScanError):
    """The target answered none of the requests sent to it: nothing was scanned."""

    code = "target_unreachable"
