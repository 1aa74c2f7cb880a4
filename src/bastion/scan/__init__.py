"""``bastion scan``: find authentication and authorization gaps in an HTTP API.

The public surface is small: build a :class:`ScanConfig`, ``await run_scan(config)``, and
render the :class:`ScanResult` with one of :data:`FORMATS`. Every request goes through
one :class:`Target`, which holds the origin restriction, the budget and the rate.
"""

from __future__ import annotations

from bastion.scan._context import ScanOptions
from bastion.scan._errors import (
    BudgetExhausted,
    OriginRefused,
    ScanError,
    SpecError,
    TargetUnreachable,
)
from bastion.scan._identity import Identity, IdentityError, LoginRecipe, parse_auth, parse_login
from bastion.scan._model import CheckInfo, Evidence, Finding, Owasp, ScanResult, Severity
from bastion.scan._runner import ScanConfig, run_scan, select_checks
from bastion.scan._target import Target
from bastion.scan.reports import FORMATS

__all__ = [
    "FORMATS",
    "BudgetExhausted",
    "CheckInfo",
    "Evidence",
    "Finding",
    "Identity",
    "IdentityError",
    "LoginRecipe",
    "OriginRefused",
    "Owasp",
    "ScanConfig",
    "ScanError",
    "ScanOptions",
    "ScanResult",
    "Severity",
    "SpecError",
    "Target",
    "TargetUnreachable",
    "parse_auth",
    "parse_login",
    "run_scan",
    "select_checks",
]
