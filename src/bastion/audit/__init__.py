"""Audit events (one JSON line per decision, never a secret) and Prometheus metrics."""

from __future__ import annotations

from bastion.audit._log import AuditLog, rfc3339
from bastion.audit._redact import REDACTED, Redactor
from bastion.audit.metrics import Metrics

__all__ = ["REDACTED", "AuditLog", "Metrics", "Redactor", "rfc3339"]
