"""Prometheus metrics on a private registry, with bounded label values.

Every label value comes from a closed set (route names from the config, outcomes,
credential types, reason codes); anything else is counted as ``_other``, so a client
cannot mint new time series (a cardinality attack). Labelled children are cached in
dicts: ``.labels()`` costs several microseconds, a dict lookup tens of nanoseconds.
"""

from __future__ import annotations

import platform
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from bastion import __version__
from bastion.model import CredentialType

OTHER = "_other"
OUTCOMES = frozenset({"allow", "deny"})
FRONT_DOORS = frozenset({"proxy", "forward_auth", "middleware", "authorization_server"})
CREDENTIALS = frozenset(c.value for c in CredentialType) | {"none"}
# 50 µs … 1 s: the decision core's whole budget is tens of microseconds.
DECISION_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
MAX_REASONS = 64
# Reasons that tell which accounts exist (DESIGN.md: no user enumeration): the client
# gets one code for all of them, and whoever reads the metrics gets one label. Only the
# audit log, server-side, keeps them apart.
ACCOUNT_REASONS = {"unknown_user", "disabled", "bad_password"}
BAD_CREDENTIALS = "bad_credentials"
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")


class _Bounded:
    """Maps a raw value to itself if known (or a new code while room is left), else _other."""

    def __init__(self, known: Iterable[str], *, room: int = 0, pattern: re.Pattern[str] = _CODE):
        self._known = set(known)
        self._room = room
        self._pattern = pattern

    def __call__(self, value: str) -> str:
        if value in self._known:
            return value
        if self._room > 0 and self._pattern.fullmatch(value):
            self._room -= 1
            self._known.add(value)
            return value
        return OTHER


MAX_DECISION_KEYS = 4096
DECISION_LABELS = ["route", "outcome", "credential", "reason"]


class _Decisions(Collector):
    """The per-decision metrics as plain counters, exposed at scrape time.

    prometheus_client's labelled children take a lock per increment (a counter and a
    histogram cost ~1.4 µs a decision); here a decision is two dict updates and a
    bisect. Everything runs on the event loop's thread, as do scrapes.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, ...], int] = {}
        # front door -> per-bucket counts (the last one +Inf), then the sum of seconds
        self.latency: dict[str, list[float]] = {}
        # The bucket bounds as prometheus_client writes them ("5e-05", "0.0001", …).
        self._bounds = [str(floatToGoString(b)) for b in DECISION_BUCKETS] + ["+Inf"]  # type: ignore[no-untyped-call]

    def histogram(self, door: str) -> list[float]:
        slots = self.latency.get(door)
        if slots is None:
            slots = self.latency[door] = [0.0] * (len(DECISION_BUCKETS) + 2)
        return slots

    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily(
            "bastion_decisions",
            "Decisions by route, outcome, credential type and reason code.",
            labels=DECISION_LABELS,
        )
        for labels, count in self.counts.items():
            counter.add_metric(list(labels), count)
        yield counter
        histogram = HistogramMetricFamily(
            "bastion_decision_seconds", "Time to decide one request, by front door.",
            labels=["front_door"],
        )  # fmt: skip
        for door, slots in self.latency.items():
            running, buckets = 0.0, []
            for bound, seen in zip(self._bounds, slots[:-1], strict=True):
                running += seen
                buckets.append((bound, running))
            histogram.add_metric([door], buckets, sum_value=slots[-1])
        yield histogram


class Metrics:
    """bastion's metrics; one instance per application.

    Args:
        routes: the configured route names (the only route label values besides _other).
        reasons: known reason codes; up to ``MAX_REASONS`` more are admitted as seen.
    """

    def __init__(self, *, routes: Iterable[str] = (), reasons: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        route_names = list(routes)
        self._route = _Bounded(route_names)
        self._reason = _Bounded(["ok", *reasons], room=MAX_REASONS)
        self._credential = _Bounded(CREDENTIALS)
        self._front_door = _Bounded(FRONT_DOORS)
        self._outcome = _Bounded(OUTCOMES)
        self._policy = _Bounded(
            ["ip", "principal", "client", "api_key", "auth-fail:account", "auth-fail:ip"]
            + [f"route:{name}" for name in route_names]
        )
        reg = self.registry
        self._decisions = _Decisions()
        reg.register(self._decisions)
        self.rate_limited = Counter(
            "bastion_rate_limited_total",
            "Requests denied by a rate limit.",
            ["policy"],
            registry=reg,
        )
        self.upstream_errors = Counter(
            "bastion_upstream_errors_total",
            "Upstream failures seen by the proxy.",
            ["route"],
            registry=reg,
        )
        self.build_info = Gauge(
            "bastion_build_info", "bastion's version.", ["version", "python"], registry=reg
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self._children: dict[tuple[str, ...], Any] = {}
        self._decision_keys: dict[
            tuple[str | None, str, str, str, str], tuple[tuple[str, ...], list[float]]
        ] = {}

    def watch_audit(self, held_bytes: Callable[[], float]) -> None:
        """Expose the audit log's backlog, read at scrape time (alert on > 0)."""
        self._read_at_scrape(
            "bastion_audit_held_bytes",
            "Audit bytes held because writing the audit log fails (0 while it works).",
            held_bytes,
        )

    def watch_websockets(self, open_connections: Callable[[], float]) -> None:
        """Expose the proxied WebSocket connections open now, read at scrape time."""
        self._read_at_scrape(
            "bastion_websocket_connections",
            "WebSocket connections the proxy holds open now.",
            open_connections,
        )

    def _read_at_scrape(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def _child(self, metric: Any, key: tuple[str, ...], labels: tuple[str, ...]) -> Any:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def decision(
        self,
        *,
        route: str | None,
        outcome: str,
        credential: str,
        reason: str,
        front_door: str,
        seconds: float,
    ) -> None:
        """Count one decision and observe its latency."""
        raw = (route, outcome, credential, reason, front_door)
        found = self._decision_keys.get(raw)
        if found is None:
            found = self._decision_key(raw)
        labels, slots = found
        counts = self._decisions.counts
        counts[labels] = counts.get(labels, 0) + 1
        slots[bisect_left(DECISION_BUCKETS, seconds)] += 1
        slots[-1] += seconds

    def _decision_key(
        self, raw: tuple[str | None, str, str, str, str]
    ) -> tuple[tuple[str, ...], list[float]]:
        """The bounded label values and latency slots for one combination of raw
        values, remembered (up to a bound) so the hot path is one dict lookup."""
        route, outcome, credential, reason, front_door = raw
        labels = (
            self._route(route or OTHER),
            self._outcome(outcome),
            self._credential(credential),
            self._reason(BAD_CREDENTIALS if reason in ACCOUNT_REASONS else reason),
        )
        found = (labels, self._decisions.histogram(self._front_door(front_door)))
        if len(self._decision_keys) < MAX_DECISION_KEYS:
            self._decision_keys[raw] = found
        return found

    def rate_limit_denied(self, policy: str) -> None:
        """Count one request denied by ``policy`` (``"ip"``, ``"route:<name>"``…)."""
        label = self._policy(policy)
        self._child(self.rate_limited, ("r", label), (label,)).inc()

    def upstream_error(self, route: str) -> None:
        """Count one failed upstream call for ``route``."""
        label = self._route(route)
        self._child(self.upstream_errors, ("u", label), (label,)).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for the /metrics endpoint."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
