"""The scanner's lab: vulnerable and fixed targets on 127.0.0.1, scanned once per session.

Every check is scored on a (vulnerable, fixed) pair of targets. The recall and false
positive table is printed at the end of the run (``pytest_terminal_summary``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.scan import ScanConfig, ScanOptions, ScanResult, parse_auth, parse_login, run_scan
from bastion.scan.checks import ALL_CHECKS
from tests.scan._servers import Pki, ServerThread, make_pki, openssl_server, tls10_server
from tests.scan.vulnapi import API, State, VulnConfig, make_app, redirect_app, spec

CAROL_KEY = "ck_live_carol_0123456789abcdef"
PASSWORDS = {"alice": "wonderland", "bob": "builder", "admin": "root-of-trust"}

# Which pair of lab targets scores each check (default: the main vuln / fixed pair).
PAIRS: dict[str, tuple[str, str]] = {
    "jwt_signature_not_verified": ("nosig", "fixed"),
    "jwt_key_confusion": ("vuln_rs", "fixed_rs"),
    "jwt_psychic_signature": ("vuln_es", "fixed_es"),
    "tls": ("vuln_tls", "fixed"),
}
FOCUSED = {  # the extra targets only run the checks they exist for
    "nosig": ["jwt_signature_not_verified"],
    "vuln_rs": ["jwt_key_confusion"],
    "fixed_rs": ["jwt_key_confusion", "jwt_alg_none", "jwt_signature_not_verified"],
    "vuln_es": ["jwt_psychic_signature"],
    "fixed_es": ["jwt_psychic_signature", "jwt_alg_none", "jwt_signature_not_verified"],
    "vuln_tls": ["tls", "transport"],
    # A NULL cipher offered at TLS 1.2 with a trusted certificate that expires in 10 days.
    "tls_weak_soon": ["tls", "transport"],
    "tls_expired": ["tls"],
}
UNVERIFIED = ("vuln_tls", "tls_weak_soon", "tls_expired")  # scanned with --insecure


@dataclass
class Target:
    url: str
    state: State | None = None
    config: VulnConfig | None = None


@dataclass
class Lab:
    pki: Pki
    targets: dict[str, Target] = field(default_factory=dict)
    redirect_port: int = 0
    results: dict[str, ScanResult] = field(default_factory=dict)

    def verify(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(str(self.pki.ca))
        return ctx


def _token(url: str, user: str, verify: ssl.SSLContext | bool) -> str:
    reply = httpx.post(
        f"{url}{API.lstrip('/')}/login",
        verify=verify,
        json={"username": user, "password": PASSWORDS[user]},
    )
    return str(reply.json()["access_token"])


def scan_config(lab: Lab, name: str, **overrides: Any) -> ScanConfig:
    """The scan of one lab target, as the CLI would build it."""
    target = lab.targets[name]
    https = target.url.startswith("https")
    verify: ssl.SSLContext | bool = lab.verify() if https and name not in UNVERIFIED else not https
    fixed = target.config is not None and not target.config.vulnerable
    identities, logins = [], []
    if target.state is not None:
        admin = _token(target.url, "admin", verify)
        identities = [
            parse_auth(f"admin=bearer:{admin}"),
            parse_auth(f"carol=apikey:X-API-Key:{CAROL_KEY}"),
        ]
        logins = [
            parse_login(f"alice={API}/login?username=alice&password=wonderland"),
            parse_login(f"bob={API}/login?username=bob&password=builder"),
        ]
    config = ScanConfig(
        base_url=target.url,
        identities=identities,
        logins=logins,
        admins=["admin"] if identities else [],
        # The fixed API does not publish its document: it is handed over as a file.
        openapi_text=json.dumps(spec(target.config)) if fixed and target.config else None,
        checks=FOCUSED.get(name),
        rps=0,  # unpaced in the lab (the pacing has its own test)
        verify=verify,
        options=ScanOptions(
            ca_bundle=str(lab.pki.ca),
            # The HTTPS targets' plain-HTTP twins: the fixed one only redirects; the TLS 1.0
            # listener's host also serves the vulnerable API on plain HTTP.
            http_ports=(lab.redirect_port if name == "fixed" else _port(lab.targets["vuln"].url),),
            jwt_secrets=(target.state.hmac_key.decode("latin-1"),)
            if fixed and target.state is not None and target.config and target.config.alg == "HS256"
            else (),
        ),
    )
    return _replace(config, overrides)


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def _replace(config: ScanConfig, overrides: dict[str, Any]) -> ScanConfig:
    return replace(config, **overrides) if overrides else config


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    folder = Path(tempfile.mkdtemp(prefix="bastion-scan-lab-"))
    pki = make_pki(folder)
    servers: list[ServerThread] = []
    lab = Lab(pki)
    variants = {
        "vuln": VulnConfig(vulnerable=True),
        "fixed": VulnConfig(vulnerable=False, https=True),
        "nosig": VulnConfig(vulnerable=True, skip_signature=True),
        "vuln_rs": VulnConfig(vulnerable=True, alg="RS256"),
        "fixed_rs": VulnConfig(vulnerable=False, alg="RS256"),
        "vuln_es": VulnConfig(vulnerable=True, alg="ES256"),
        "fixed_es": VulnConfig(vulnerable=False, alg="ES256"),
    }
    with contextlib.ExitStack() as stack:
        for name, config in variants.items():
            app, state = make_app(config)
            tls = {"certfile": pki.cert, "keyfile": pki.key} if config.https else {}
            server = ServerThread(app, **tls).start()
            servers.append(server)
            lab.targets[name] = Target(server.url, state, config)
        redirect = ServerThread(redirect_app()).start()
        servers.append(redirect)
        lab.redirect_port = redirect.port
        lab.targets["vuln_tls"] = Target(stack.enter_context(tls10_server(pki, folder)))
        weak = ["-tls1_2", "-cipher", "ALL:eNULL:@SECLEVEL=0"]
        lab.targets["tls_weak_soon"] = Target(
            stack.enter_context(openssl_server(folder, pki.soon, pki.key, weak))
        )
        lab.targets["tls_expired"] = Target(
            stack.enter_context(openssl_server(folder, pki.expired, pki.key, ["-tls1_2"]))
        )
        yield lab
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def lab_results(lab: Lab) -> dict[str, ScanResult]:
    """Every lab target scanned once (the tests below only read the results)."""
    for name in [
        "vuln",
        "fixed",
        "nosig",
        "vuln_rs",
        "fixed_rs",
        "vuln_es",
        "fixed_es",
        *UNVERIFIED,
    ]:
        config = scan_config(lab, name)
        if name in UNVERIFIED:
            config = _replace(config, {"verify": False})
        lab.results[name] = asyncio.run(run_scan(config))
    # The probes that change other users' objects run only with --allow-unsafe.
    for name in ("vuln", "fixed"):
        state = lab.targets[name].state
        if state is not None:
            state.failures.clear()  # the brute-force lockout of the first scan has expired
        config = scan_config(lab, name, checks=["bola", "bfla"])
        config = _replace(config, {"options": replace(config.options, allow_unsafe=True)})
        lab.results[name + "_unsafe"] = asyncio.run(run_scan(config))
    _TABLE.extend(score(lab.results))
    return lab.results


def score(results: dict[str, ScanResult]) -> list[tuple[str, bool, int]]:
    """(check id, found in its vulnerable target, findings on its fixed target)."""
    rows = []
    for check in ALL_CHECKS:
        vuln, fixed = PAIRS.get(check.id, ("vuln", "fixed"))
        found = any(f.check == check.id for f in results[vuln].findings)
        false = sum(1 for f in results[fixed].findings if f.check == check.id)
        rows.append((check.id, found, false))
    return rows


_TABLE: list[tuple[str, bool, int]] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TABLE:
        return
    write = terminalreporter.write_line
    write("")
    write("bastion scan — recall and false positives over the vulnerable lab")
    write(f"{'check':32} {'vulnerable: found':>18} {'fixed: findings':>16}")
    for check, found, false in _TABLE:
        write(f"{check:32} {'yes' if found else 'NO':>18} {false:>16}")
    recall = sum(1 for _c, f, _x in _TABLE if f) / len(_TABLE)
    fps = sum(1 for _c, _f, x in _TABLE if x)
    write(
        f"recall {recall:.3f} ({sum(1 for _c, f, _x in _TABLE if f)}/{len(_TABLE)}); "
        f"checks with a false positive: {fps}/{len(_TABLE)} (rate {fps / len(_TABLE):.3f})"
    )
