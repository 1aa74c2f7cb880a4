"""Each check finds its flaw in the vulnerable lab target and stays silent on the fixed one."""

from __future__ import annotations

import re

import pytest

from bastion.scan import ScanResult
from bastion.scan.checks import ALL_CHECKS
from tests.scan.conftest import CAROL_KEY, FOCUSED, PAIRS, PASSWORDS, score

FIXED_TARGETS = ("fixed", "fixed_rs", "fixed_es")
JWT = re.compile(r"eyJ[\w-]{10,}\.[\w-]{10,}")


def test_every_check_has_a_vulnerable_and_a_fixed_target() -> None:
    for check in ALL_CHECKS:
        vuln, fixed = PAIRS.get(check.id, ("vuln", "fixed"))
        for name in (vuln, fixed):
            assert name not in FOCUSED or check.id in FOCUSED[name], (check.id, name)


def test_recall_is_total_and_no_false_positive(lab_results: dict[str, ScanResult]) -> None:
    rows = score(lab_results)
    missed = [check for check, found, _fp in rows if not found]
    noisy = [check for check, _found, fp in rows if fp]
    assert missed == []
    assert noisy == []


@pytest.mark.parametrize("name", FIXED_TARGETS)
def test_fixed_targets_yield_no_finding_at_all(
    lab_results: dict[str, ScanResult], name: str
) -> None:
    result = lab_results[name]
    assert [(f.check, f.title) for f in result.findings] == []
    assert result.errors == {}


def test_scans_complete_without_errors(lab_results: dict[str, ScanResult]) -> None:
    for name, result in lab_results.items():
        assert result.errors == {}, name


def test_per_origin_findings_are_reported_once(lab_results: dict[str, ScanResult]) -> None:
    per_origin = {
        "security_headers",
        "version_disclosure",
        "trace_method",
        "cors",
        "transport",
        "no_rate_limit",
        "verbose_errors",
    }
    for check in per_origin:
        titles = [f.title for f in lab_results["vuln"].findings if f.check == check]
        assert len(titles) == len(set(titles)) == 1, (check, titles)


def test_every_finding_is_complete(lab_results: dict[str, ScanResult]) -> None:
    for result in lab_results.values():
        for f in result.findings:
            assert f.title
            assert f.why
            assert f.fix
            assert f.endpoint.startswith("http")
            assert f.cwe > 0
            assert f.owasp.value.startswith("API")
            assert f.evidence, f.check
            assert all(e.request and e.response for e in f.evidence)


def test_evidence_never_carries_a_secret(lab_results: dict[str, ScanResult]) -> None:
    secrets = [*PASSWORDS.values(), CAROL_KEY]
    for result in lab_results.values():
        for f in result.findings:
            for e in f.evidence:
                text = e.request + e.response + e.note
                for secret in secrets:
                    assert secret not in text, (f.check, secret)
                assert JWT.search(text) is None, f.check


def test_forged_identity_is_the_evidence_for_jwt_findings(
    lab_results: dict[str, ScanResult],
) -> None:
    forged = [
        f
        for f in lab_results["vuln"].findings
        if f.check.startswith("jwt_") and f.check != "jwt_lifetime"
    ]
    assert forged
    for f in forged:
        # The claims named another user, and the identity endpoint answered as that user.
        assert "answered as" in f.evidence[0].note
        assert '"username": "bob"' in f.evidence[0].response or "bob" in f.evidence[0].note


def test_kid_injection_reaches_a_shell(lab_results: dict[str, ScanResult]) -> None:
    (finding,) = [f for f in lab_results["vuln"].findings if f.check == "jwt_kid_injection"]
    notes = " ".join(e.note for e in finding.evidence)
    for probe in ("path traversal", "SQL injection", "command injection (| printf)"):
        assert probe in notes


def test_old_token_replayed_after_a_password_change(lab_results: dict[str, ScanResult]) -> None:
    (finding,) = [
        f for f in lab_results["vuln"].findings if f.check == "token_after_password_change"
    ]
    assert "still read" in finding.evidence[1].note
    assert finding.evidence[1].response.startswith("HTTP 200")


def test_enumeration_beyond_login(lab_results: dict[str, ScanResult]) -> None:
    titles = {f.title for f in lab_results["vuln"].findings if f.check == "user_enumeration"}
    assert titles == {
        f"Username enumeration on {where}"
        for where in ("login", "registration", "password reset", "profile lookup")
    }


def _titles(result: ScanResult, check: str) -> dict[str, str]:
    return {f.title: f.endpoint for f in result.findings if f.check == check}


def test_bfla_verb_switch_override_writes_and_state_changing_get(
    lab_results: dict[str, ScanResult],
) -> None:
    found = _titles(lab_results["vuln"], "bfla")
    assert found["Admin operation reachable by a regular user (direct call)"].endswith(
        "/admin/users"
    )
    assert found["Admin operation reachable by a regular user (verb switch)"].endswith(
        "/admin/audit"
    )
    assert found["Admin operation reachable by a regular user (method override)"].endswith(
        "/admin/stats"
    )
    assert found["Admin update operation callable by a regular user"].endswith(
        "/admin/users/{user_id}"
    )
    assert found["Unauthenticated state-changing GET"].endswith("/orders/{order_id}/archive")
    # The owner's object was put back (the inverse action): nothing stays archived.
    state = lab_results["vuln"]
    assert state.errors == {}


def test_bola_sources_and_writes(lab_results: dict[str, ScanResult]) -> None:
    endpoints = {
        f.endpoint.split("/api/v2", 1)[1] for f in lab_results["vuln"].findings if f.check == "bola"
    }
    # ids from listings, the profile, a create response; two path parameters.
    assert {
        "/orders/{order_id}",
        "/users/{user_id}",
        "/notes/{note_id}",
        "/users/{user_id}/orders/{order_id}",
    } <= endpoints
    # Writes are probed only with --allow-unsafe, proven by the owner's read-back.
    assert not any("write" in f.title for f in lab_results["vuln"].findings)
    writes = _titles(lab_results["vuln_unsafe"], "bola")
    assert writes["Broken object level authorization on write (BOLA)"].endswith(
        "/orders/{order_id}"
    )
    assert [f.title for f in lab_results["fixed_unsafe"].findings] == []
    assert lab_results["fixed_unsafe"].errors == {}


def test_tls_and_transport_findings(lab_results: dict[str, ScanResult]) -> None:
    def titles(name: str) -> dict[str, str]:
        return {f.title: f.severity.label for f in lab_results[name].findings}

    legacy = titles("vuln_tls")
    assert legacy["TLS 1.0 accepted"] == "medium"
    assert legacy["Certificate not trusted: self-signed certificate"] == "medium"
    assert legacy["HTTPS origin also served over plain HTTP"] == "medium"
    assert "TLS 1.1 accepted" not in legacy
    weak = titles("tls_weak_soon")
    assert weak == {
        "Weak cipher suite accepted": "medium",
        "Certificate expires soon": "low",
        "HSTS missing or too short": "low",
        "HTTPS origin also served over plain HTTP": "medium",
    }
    assert titles("tls_expired") == {"Certificate not trusted: certificate has expired": "high"}
    # The fixed HTTPS target: TLS 1.2+, AEAD only, trusted, HSTS, HTTP only redirects.
    assert not [f for f in lab_results["fixed"].findings if f.check in {"tls", "transport"}]


def test_websockets_opened_without_credentials_and_from_any_origin(
    lab_results: dict[str, ScanResult],
) -> None:
    found = {
        (f.check, f.endpoint.split("/api/v2", 1)[1]): f
        for f in lab_results["vuln"].findings
        if f.check.startswith("websocket_")
    }
    # /live: the HTTP route needs a credential, its socket does not, and said what it
    # serves; /notifications: a cookie opens it from any page, but nothing without one.
    assert set(found) == {
        ("websocket_unauthenticated", "/live"),
        ("websocket_origin", "/notifications"),
    }
    open_socket = found["websocket_unauthenticated", "/live"]
    assert open_socket.severity.label == "high"
    assert '[message] {"feed":"orders"' in open_socket.evidence[0].response
    assert "HTTP 401" in open_socket.evidence[1].response
    hijack = found["websocket_origin", "/notifications"]
    assert "origin: https://evil.bastion-scan.invalid" in hijack.evidence[0].request.lower()
    assert "session cookie" in hijack.evidence[0].note
    assert "order shipped" in hijack.evidence[0].response
