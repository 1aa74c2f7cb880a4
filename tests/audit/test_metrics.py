from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from bastion.audit import Metrics
from bastion.audit.metrics import MAX_REASONS, OTHER


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def allowed(metrics: Metrics, seconds: float) -> None:
    """One allowed JWT decision on route "orders" through the proxy."""
    metrics.decision(
        route="orders",
        outcome="allow",
        credential="jwt",
        reason="ok",
        front_door="proxy",
        seconds=seconds,
    )


def test_decisions_are_counted_and_timed() -> None:
    metrics = Metrics(routes=["orders"])
    for _ in range(3):
        allowed(metrics, 0.00004)
    metrics.decision(
        route="orders",
        outcome="deny",
        credential="api_key",
        reason="invalid_token",
        front_door="forward_auth",
        seconds=0.3,
    )
    got = samples(metrics)
    key = (("credential", "jwt"), ("outcome", "allow"), ("reason", "ok"), ("route", "orders"))
    assert got[("bastion_decisions_total", key)] == 3
    assert got[("bastion_decision_seconds_bucket", (("front_door", "proxy"), ("le", "5e-05")))] == 3
    assert got[("bastion_decision_seconds_count", (("front_door", "forward_auth"),))] == 1
    fa_le = (("front_door", "forward_auth"), ("le", "0.25"))
    assert got[("bastion_decision_seconds_bucket", fa_le)] == 0


def test_label_values_from_requests_cannot_grow_series() -> None:
    metrics = Metrics(routes=["orders"])
    for i in range(500):
        metrics.decision(
            route=f"/evil/{i}",
            outcome=f"o{i}",
            credential=f"c{i}",
            reason=f"r{i}" if i % 2 else f"Reason {i}!",
            front_door=f"door{i}",
            seconds=0.001,
        )
        metrics.rate_limit_denied(f"route:x{i}")
        metrics.upstream_error(f"u{i}")
    got = samples(metrics)
    decisions = [labels for name, labels in got if name == "bastion_decisions_total"]
    assert len(decisions) <= MAX_REASONS + 1
    assert all(dict(labels)["route"] == OTHER for labels in decisions)
    assert all(dict(labels)["outcome"] == OTHER for labels in decisions)
    assert got[("bastion_rate_limited_total", (("policy", OTHER),))] == 500
    assert got[("bastion_upstream_errors_total", (("route", OTHER),))] == 500
    assert len(metrics._children) <= MAX_REASONS + 4


def test_known_policies_and_build_info() -> None:
    metrics = Metrics(routes=["orders"])
    metrics.rate_limit_denied("ip")
    metrics.rate_limit_denied("route:orders")
    metrics.upstream_error("orders")
    got = samples(metrics)
    assert got[("bastion_rate_limited_total", (("policy", "ip"),))] == 1
    assert got[("bastion_rate_limited_total", (("policy", "route:orders"),))] == 1
    assert got[("bastion_upstream_errors_total", (("route", "orders"),))] == 1
    (info,) = [labels for name, labels in got if name == "bastion_build_info"]
    assert dict(info)["version"]
    assert got[("bastion_build_info", info)] == 1


def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(routes=["a"]), Metrics(routes=["a"])
    first.upstream_error("a")
    assert ("bastion_upstream_errors_total", (("route", "a"),)) not in samples(second)


def test_a_latency_on_a_bucket_bound_falls_in_that_bucket() -> None:
    metrics = Metrics(routes=["orders"])
    for seconds in (0.001, 2.5):  # exactly "le 0.001"; beyond the last bound: +Inf only
        allowed(metrics, seconds)
    got = samples(metrics)

    def bucket(le: str) -> float:
        return got[("bastion_decision_seconds_bucket", (("front_door", "proxy"), ("le", le)))]

    assert (bucket("0.0005"), bucket("0.001"), bucket("1.0"), bucket("+Inf")) == (0, 1, 1, 2)
    assert got[("bastion_decision_seconds_sum", (("front_door", "proxy"),))] == 2.501
