from __future__ import annotations

import asyncio
import base64
import os
import re
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.audit import REDACTED, AuditLog, Redactor, _log, rfc3339

JWT = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0"
    ".eyJzdWIiOiJhbGljZSIsImV4cCI6MTkwMDAwMDAwMH0"
    ".MEUCIQDx3b0pQwQnVb2Jk7yZ0Wv9kH1fGm5sC3dQ4rT6uY8iOQIgU2l"
)
API_KEY = "bst_Zk3q9V_x2LmN8pQrT4uW6yA1cE5gH7jK"
PASSWORD = "correct horse battery staple"
BASIC = "Basic " + base64.b64encode(b"alice:hunter2-very-secret").decode()
SECRETS = [
    JWT,
    JWT.split(".")[0] + "." + JWT.split(".")[1],
    JWT.split(".")[2],
    API_KEY,
    API_KEY.removeprefix("bst_"),
    PASSWORD,
    base64.b64encode(b"alice:hunter2-very-secret").decode(),
]


def decision(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "ts": "2025-01-31T12:00:00.123Z",
        "request_id": "r-1",
        "client_ip": "203.0.113.9",
        "method": "GET",
        "host": "api.example.com",
        "path": "/orders/7",
        "route": "orders",
        "front_door": "proxy",
        "principal": "alice",
        "credential": "jwt",
        "key_id": "k1",
        "issuer": "https://idp.example.com",
        "outcome": "allow",
        "status": 200,
        "reason": "ok",
        "latency_ms": 0.042,
    }
    event.update(overrides)
    return event


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_no_secret_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    log.emit(decision(path=f"/login?access_token={JWT}&api_key={API_KEY}"))
    log.emit(decision(reason=f"invalid_token: signature mismatch for {JWT}"))
    log.emit(decision(principal=API_KEY, key_id=f"key {API_KEY} revoked"))
    log.emit(decision(password=PASSWORD, Authorization=f"Bearer {JWT}", cookie="sid=abc"))
    log.emit(decision(headers={"x-api-key": API_KEY, "authorization": BASIC}))
    log.emit(decision(reason=f"bad credential: {BASIC}", client_secret=PASSWORD))
    log.emit(decision(extra=[JWT, {"refresh_token": PASSWORD}, (API_KEY,)]))
    log.security_event("brute_force", account="alice", sample=f"Authorization: {BASIC}")
    log.security_event("key_revoked", key=API_KEY, note=f"leaked in {JWT}")
    log.close()

    text = path.read_text()
    for secret in SECRETS:
        assert secret not in text
    assert not re.search(r"eyJ[\w-]*\.eyJ", text)
    assert "bst_" not in text
    assert "?" not in text  # no query string, not even an empty one
    lines = read_lines(path)
    assert len(lines) == 9
    assert lines[0]["path"] == "/login"
    assert lines[1]["reason"] == f"invalid_token: signature mismatch for {REDACTED}"
    assert lines[3]["password"] == REDACTED
    assert lines[3]["Authorization"] == REDACTED
    assert lines[7]["event"] == "security"
    assert lines[7]["kind"] == "brute_force"


def test_decision_events_with_plain_keys_are_scanned_value_by_value(tmp_path: Path) -> None:
    # The gateway's own events (fixed keys, scalar values) skip the key walk; every string
    # value is still checked, and a clean value remembered must not let a secret through.
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    for _ in range(2):  # the second round hits the remembered clean values
        log.emit(decision(), plain_keys=True)
        log.emit(decision(path=f"/login?access_token={JWT}"), plain_keys=True)
        log.emit(decision(reason=f"invalid_token: signature mismatch for {JWT}"), plain_keys=True)
        log.emit(decision(principal=API_KEY, host=f"{API_KEY}.example"), plain_keys=True)
        log.emit(decision(request_id=f"bad credential: {BASIC}"), plain_keys=True)
        # JSON escapes the tab, so a scan of the serialised line alone would miss this one.
        log.emit(decision(issuer=f"Bearer\t{JWT.split('.')[2]}"), plain_keys=True)
    log.close()
    text = path.read_text()
    for secret in SECRETS:
        assert secret not in text
    assert "bst_" not in text
    assert "?" not in text
    lines = read_lines(path)
    assert len(lines) == 12
    assert lines[0] == lines[6] == decision()
    assert lines[1]["path"] == lines[7]["path"] == "/login"
    assert lines[3]["principal"] == REDACTED


def test_ordinary_fields_pass_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    event = decision()
    log.emit(event)
    log.close()
    assert read_lines(path) == [event]


def test_file_is_created_private_and_appended(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    for i in range(2):
        log = AuditLog(str(path))
        log.emit(decision(request_id=f"r{i}"))
        log.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [e["request_id"] for e in read_lines(path)] == ["r0", "r1"]


def test_nothing_is_written_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    log.emit(decision())
    assert path.read_bytes() == b""  # buffered: no syscall per event
    log.flush()
    assert len(read_lines(path)) == 1
    log.close()


def test_a_full_buffer_is_written_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    n = 0
    while path.stat().st_size == 0:
        log.emit(decision(request_id=f"r{n}"))
        n += 1
    assert path.stat().st_size >= _log.FLUSH_BYTES
    assert n < 2 * _log.FLUSH_BYTES // len(orjson.dumps(decision()))
    log.close()


@pytest.mark.parametrize("kind", ["event", "decision"])
async def test_the_event_loop_timer_flushes_within_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr(_log, "FLUSH_SECONDS", 0.05)
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    if kind == "event":
        log.emit(decision(request_id="r-1"))
    else:  # kept as values until the timer serialises it
        log.emit_decision("r-1", DECISION_VALUES, 0.1)
    assert path.read_bytes() == b""
    await asyncio.sleep(0.2)
    assert [e["request_id"] for e in read_lines(path)] == ["r-1"]
    await log.aclose()


def test_many_events_emitted_quickly_are_all_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    for i in range(20_000):
        log.emit(decision(request_id=f"r{i}"))
    log.close()
    assert [e["request_id"] for e in read_lines(path)] == [f"r{i}" for i in range(20_000)]


def test_emit_after_close_raises(tmp_path: Path) -> None:
    log = AuditLog(str(tmp_path / "a.jsonl"))
    log.close()
    log.close()
    with pytest.raises(RuntimeError):
        log.emit(decision())


def test_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    log = AuditLog("-")
    log.emit(decision(reason=f"token {JWT}"))
    log.close()
    out = capsysbinary.readouterr().out
    assert JWT not in out.decode()
    assert orjson.loads(out)["reason"] == f"token {REDACTED}"


def test_missing_ts_is_added_and_odd_values_do_not_raise(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path), clock=lambda: 1738324800.1234)
    log.emit({"outcome": "deny", "status": 401, "big": 2**70, "obj": Path("/x")})
    log.close()
    (line,) = read_lines(path)
    assert line["ts"] == "2025-01-31T12:00:00.123Z"
    assert line["big"] == str(2**70)


def test_rfc3339_has_milliseconds_in_utc() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1738324800.9999) == "2025-01-31T12:00:00.999Z"
    assert rfc3339(1738324801.5) == "2025-01-31T12:00:01.500Z"


def test_other_api_key_prefixes_are_masked() -> None:
    redactor = Redactor(["bst_", "acme_"])
    assert redactor.text("key acme_abcdef123 and bst_xyz") == f"key {REDACTED} and {REDACTED}"


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_an_embedded_jwt_never_survives(noise: str) -> None:
    redactor = Redactor()
    out = redactor.mapping({"reason": noise + JWT + noise, "path": f"/a?{noise}"})
    assert JWT not in out["reason"]
    assert "?" not in out["path"]


def test_prose_about_credentials_is_kept() -> None:
    redactor = Redactor()
    assert redactor.text("basic credentials rejected") == "basic credentials rejected"
    assert redactor.text("Basic dXNlcjpwYXNz") == REDACTED
    assert redactor.text("bearer abc.def-123") == REDACTED


def test_secret_named_keys_are_masked_at_any_depth(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    log.emit({"outcome": "deny", "request": {"headers": {"Proxy-Authorization": "opaque9"}}})
    log.emit({"outcome": "deny", "session_cookie": "s3ss10n", "client_secret": "cs-plain"})
    log.close()
    text = path.read_text()
    for secret in ("opaque9", "s3ss10n", "cs-plain"):
        assert secret not in text
    assert len(read_lines(path)) == 2


DECISION_VALUES = (
    "203.0.113.9", "GET", "api.example.com", "/orders/7", "orders", "proxy", "alice",
    "jwt", "k1", "https://idp.example.com", "allow", 200, "ok",
)  # fmt: skip


def test_decision_lines_are_the_lines_emit_writes(tmp_path: Path) -> None:
    # emit_decision remembers the serialised middle of a line; the bytes must not differ
    # from emit()'s for the same event, on the first line or a remembered one.
    fast, slow = tmp_path / "fast.jsonl", tmp_path / "slow.jsonl"
    a, b = (
        AuditLog(str(fast), clock=lambda: 1_738_324_800.123),
        AuditLog(str(slow), clock=lambda: 1_738_324_800.123),
    )
    for request_id, latency in (("r-1", 0.042), ("r-2", 12.5), ("r-3", 0.0)):
        a.emit_decision(request_id, DECISION_VALUES, latency)
        event = {"ts": b.timestamp(), "request_id": request_id}
        event.update(zip(_log.DECISION_FIELDS, DECISION_VALUES, strict=True))
        event["latency_ms"] = latency
        b.emit(event, plain_keys=True)
    a.close()
    b.close()
    assert fast.read_bytes() == slow.read_bytes()
    assert read_lines(fast)[1]["request_id"] == "r-2"
    assert read_lines(fast)[0]["path"] == "/orders/7"


def test_decision_lines_never_remember_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    leaky = list(DECISION_VALUES)
    leaky[3] = f"/login/{JWT}"  # a path that carries a token
    leaky[6] = API_KEY  # a subject that is a key
    for _ in range(3):
        log.emit_decision("r-1", tuple(leaky), 0.1)
        log.emit_decision(f"id-{API_KEY}", DECISION_VALUES, 0.1)  # an id that is a key
        log.emit_decision(JWT, DECISION_VALUES, 0.1)  # an id that is a token
        log.emit_decision('quote"and\\slash', DECISION_VALUES, 0.1)  # needs JSON escaping
    log.close()
    text = path.read_text()
    for secret in SECRETS:
        assert secret not in text
    lines = read_lines(path)
    assert len(lines) == 12
    assert lines[0]["principal"] == REDACTED
    assert lines[2]["request_id"] == REDACTED
    assert lines[3]["request_id"] == 'quote"and\\slash'


def test_decisions_and_other_events_keep_their_order(tmp_path: Path) -> None:
    # Decision lines are serialised in batches; any other line first writes those before it.
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    log.emit_decision("r-1", DECISION_VALUES, 0.1)
    log.security_event("key_revoked", key_id="k1")
    log.emit_decision("r-2", DECISION_VALUES, 0.1)
    log.emit(decision(request_id="r-3"))
    log.emit_decision("r-4", DECISION_VALUES, 0.1)
    log.close()
    lines = read_lines(path)
    assert [e.get("request_id", e.get("kind")) for e in lines] == [
        "r-1", "key_revoked", "r-2", "r-3", "r-4",
    ]  # fmt: skip


def test_decision_lines_are_written_without_a_flush_call(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    n = 0
    while path.stat().st_size == 0:
        log.emit_decision(f"r-{n}", DECISION_VALUES, 0.1)
        n += 1
        assert n < 2 * _log.FLUSH_BYTES // 100 + _log.PENDING_MAX, "never written"
    log.close()
    assert len(read_lines(path)) == n
    assert read_lines(path)[-1]["request_id"] == f"r-{n - 1}"


def test_a_closed_log_refuses_decisions(tmp_path: Path) -> None:
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    log.close()
    with pytest.raises(RuntimeError):
        log.emit_decision("r-1", DECISION_VALUES, 0.1)
