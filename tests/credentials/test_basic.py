from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.config import BasicConfig
from bastion.credentials._passwords import Passwords, hash_password, make_hasher
from bastion.credentials.basic import (
    MAX_PASSWORD_BYTES,
    BasicAuthenticator,
    check_username,
    is_loopback,
    parse_basic,
)
from bastion.errors import CredentialRefused, InvalidToken, RateLimited, Unavailable
from bastion.model import CredentialType, RequestView
from bastion.store import UserStore, async_engine, migrate
from bastion.store.users import UserRecord

FAST = make_hasher(time_cost=1, memory_cost=8, parallelism=1)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class SpyPasswords(Passwords):
    """Real argon2 (cheap parameters) that counts every verify it runs."""

    def __init__(self) -> None:
        super().__init__(FAST, max_workers=2)
        self.verified: list[str] = []

    def verify_sync(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return super().verify_sync(password_hash, password)


class FakeUsers:
    def __init__(self) -> None:
        self.users: dict[str, UserRecord] = {}
        self.lookups = 0

    def add(self, name: str, password: str, *, disabled: bool = False, hasher=FAST) -> None:
        self.users[name] = UserRecord(
            id=len(self.users) + 1,
            username=name,
            password_hash=hash_password(password, hasher),
            roles=("admin", "ops"),
            disabled=disabled,
            created_at=NOW,
            updated_at=NOW,
        )

    async def get_by_username(self, username: str) -> UserRecord | None:
        self.lookups += 1
        return self.users.get(username)

    async def set_password(self, username: str, password_hash: str) -> UserRecord:
        from dataclasses import replace

        self.users[username] = replace(self.users[username], password_hash=password_hash)
        return self.users[username]


def basic(user: str | bytes, password: str | bytes) -> str:
    u = user.encode() if isinstance(user, str) else user
    p = password.encode() if isinstance(password, str) else password
    return "Basic " + base64.b64encode(u + b":" + p).decode()


def req(auth: str | None, *, secure: bool = True, ip: str = "203.0.113.9") -> RequestView:
    headers = {} if auth is None else {"authorization": auth}
    return RequestView(method="GET", path="/", headers=headers, client_ip=ip, secure=secure)


@pytest.fixture
def users() -> FakeUsers:
    u = FakeUsers()
    u.add("alice", "correct horse")
    u.add("dora", "pw-dora", disabled=True)
    return u


@pytest.fixture
def passwords() -> Iterator[SpyPasswords]:
    p = SpyPasswords()
    yield p
    p.close()


@pytest.fixture
def auth(users: FakeUsers, passwords: SpyPasswords) -> BasicAuthenticator:
    return BasicAuthenticator(users, BasicConfig(realm='my "api"'), passwords)


async def test_good_credentials_give_a_principal(auth: BasicAuthenticator) -> None:
    p = await auth.authenticate(req(basic("alice", "correct horse")))
    assert (p.subject, p.credential, p.roles) == ("alice", CredentialType.BASIC, {"admin", "ops"})


def test_challenge_names_realm_and_charset(auth: BasicAuthenticator) -> None:
    assert auth.challenge("invalid_token") == 'Basic realm="my \\"api\\"", charset="UTF-8"'


@pytest.mark.parametrize(
    ("header", "present"),
    [("Basic YTpi", True), ("basic YTpi", True), ("Bearer x", False), ("", False)],
)
def test_present(auth: BasicAuthenticator, header: str, present: bool) -> None:
    assert auth.present(req(header)) is present
    assert auth.present(req(None)) is False


def test_account_is_the_claimed_username(auth: BasicAuthenticator) -> None:
    assert auth.account(req(basic("mallory", "x"))) == "mallory"
    assert auth.account(req("Basic !!!")) is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic !!!notbase64", "basic_bad_base64"),
        ("Basic YWxpY2U6eA", "basic_bad_base64"),  # missing padding
        ("Basic YWxpY2U6eB==", "basic_bad_base64"),  # non-canonical trailing bits
        ("Basic YWxp Y2U6eA==", "basic_bad_base64"),
        ("Basic é", "basic_bad_base64"),
        (basic(b"\xff\xfe", "pw"), "basic_bad_utf8"),
        (basic("alice", b"\xc3\x28"), "basic_bad_utf8"),
        ("Basic " + base64.b64encode(b"alice-no-colon").decode(), "basic_no_colon"),
        ("Basic ", "basic_no_colon"),
        (basic("al\x00ice", "pw"), "basic_bad_credentials_syntax"),
        (basic("al\tice", "pw"), "basic_bad_credentials_syntax"),
        (basic("alice", "p\x7fw"), "basic_bad_credentials_syntax"),
        (basic("", "pw"), "basic_bad_credentials_syntax"),
        (basic("alice", ""), "basic_bad_credentials_syntax"),
        (basic("a" * 256, "pw"), "basic_bad_credentials_syntax"),
        (basic("alice", "x" * (MAX_PASSWORD_BYTES + 1)), "basic_bad_credentials_syntax"),
        (basic("alice", "x" * 1_000_000), "basic_too_long"),
        ("Bearer abc", "basic_not_basic"),
    ],
)
async def test_malformed_is_invalid_token_and_never_hashes(
    auth: BasicAuthenticator,
    passwords: SpyPasswords,
    users: FakeUsers,
    header: str,
    reason: str,
) -> None:
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req(header))
    assert info.value.reason == reason
    assert passwords.verified == []
    assert users.lookups == 0


async def test_huge_password_returns_fast(
    auth: BasicAuthenticator, passwords: SpyPasswords
) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidToken):
        await auth.authenticate(req(basic("alice", "x" * 1_000_000)))
    assert time.perf_counter() - started < 0.5
    assert passwords.verified == []


def test_username_with_colon_is_split_at_the_first_colon() -> None:
    creds = parse_basic(basic("alice", "pa:ss:word"))
    assert (creds.username, creds.password) == ("alice", "pa:ss:word")
    assert "pa:ss" not in repr(creds)


def test_utf8_credentials_are_nfc_normalised() -> None:
    creds = parse_basic(basic("re\u0301my", "cafe\u0301"))
    assert (creds.username, creds.password) == ("r\u00e9my", "caf\u00e9")


@pytest.mark.parametrize("ip", ["203.0.113.9", "10.0.0.1", "::ffff:10.0.0.1", "", "not-an-ip"])
async def test_plain_http_from_a_remote_client_is_refused(
    auth: BasicAuthenticator, passwords: SpyPasswords, users: FakeUsers, ip: str
) -> None:
    with pytest.raises(CredentialRefused) as info:
        await auth.authenticate(req(basic("alice", "correct horse"), secure=False, ip=ip))
    assert info.value.reason == "basic_over_http"
    assert "TLS" in (info.value.detail or "")
    assert passwords.verified == []
    assert users.lookups == 0


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
async def test_plain_http_from_loopback_is_allowed(auth: BasicAuthenticator, ip: str) -> None:
    p = await auth.authenticate(req(basic("alice", "correct horse"), secure=False, ip=ip))
    assert p.subject == "alice"
    assert is_loopback(ip)


async def test_plain_http_allowed_by_config(users: FakeUsers, passwords: SpyPasswords) -> None:
    auth = BasicAuthenticator(users, BasicConfig(allow_insecure_http=True), passwords)
    p = await auth.authenticate(req(basic("alice", "correct horse"), secure=False))
    assert p.subject == "alice"


async def _error(auth: BasicAuthenticator, header: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req(header))
    return info.value


async def test_unknown_user_wrong_password_disabled_look_the_same(
    auth: BasicAuthenticator, passwords: SpyPasswords
) -> None:
    unknown = await _error(auth, basic("mallory", "correct horse"))
    wrong = await _error(auth, basic("alice", "wrong"))
    disabled = await _error(auth, basic("dora", "pw-dora"))
    public = {(type(e), e.code, e.title, e.status, e.detail) for e in (unknown, wrong, disabled)}
    assert len(public) == 1
    assert (unknown.reason, wrong.reason, disabled.reason) == (
        "unknown_user",
        "bad_password",
        "disabled",
    )
    # Every one of them ran exactly one argon2 verify: no timing shortcut.
    assert len(passwords.verified) == 3


async def test_unknown_user_runs_a_dummy_verify(
    auth: BasicAuthenticator, passwords: SpyPasswords
) -> None:
    await _error(auth, basic("nobody", "x"))
    assert len(passwords.verified) == 1
    assert passwords.verified[0].startswith("$argon2id$")


async def test_changed_password_takes_effect_at_once(
    auth: BasicAuthenticator, users: FakeUsers
) -> None:
    await auth.authenticate(req(basic("alice", "correct horse")))
    users.add("alice", "new password")
    await _error(auth, basic("alice", "correct horse"))
    assert (await auth.authenticate(req(basic("alice", "new password")))).subject == "alice"


async def test_outdated_hash_is_upgraded_on_login(
    auth: BasicAuthenticator, users: FakeUsers, passwords: SpyPasswords
) -> None:
    old = make_hasher(time_cost=1, memory_cost=16, parallelism=1)
    users.add("olga", "pw", hasher=old)
    assert passwords.needs_rehash(users.users["olga"].password_hash)
    await auth.authenticate(req(basic("olga", "pw")))
    new_hash = users.users["olga"].password_hash
    assert not passwords.needs_rehash(new_hash)
    assert (await auth.authenticate(req(basic("olga", "pw")))).subject == "olga"


async def test_rehash_failure_does_not_fail_the_login(
    users: FakeUsers, passwords: SpyPasswords
) -> None:
    class Broken(FakeUsers):
        async def set_password(self, username: str, password_hash: str) -> UserRecord:
            raise Unavailable("db down")

    broken = Broken()
    broken.add("olga", "pw", hasher=make_hasher(time_cost=1, memory_cost=16, parallelism=1))
    auth = BasicAuthenticator(broken, BasicConfig(), passwords)
    assert (await auth.authenticate(req(basic("olga", "pw")))).subject == "olga"


async def test_verify_flood_is_throttled_fast(users: FakeUsers) -> None:
    passwords = Passwords(FAST, max_workers=1, max_pending=0)
    auth = BasicAuthenticator(users, BasicConfig(), passwords)
    with pytest.raises(RateLimited) as info:
        await auth.authenticate(req(basic("alice", "correct horse")))
    assert info.value.reason == "password_verify_busy"
    assert info.value.retry_after == 1
    passwords.close()


def test_default_parameters_meet_owasp() -> None:
    hasher = make_hasher()
    assert (hasher.memory_cost, hasher.time_cost, hasher.parallelism) == (19456, 2, 1)
    assert hash_password("x", hasher).startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.parametrize("bad", ["", "a:b", " edge", "tab\there", "x" * 256])
def test_check_username_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="username"):
        check_username(bad)


async def test_against_the_real_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    await migrate(url)
    engine = async_engine(url)
    store = UserStore(engine)
    passwords = Passwords()
    await store.add("erin", await passwords.hash("s3cret pass"), roles=["ops"])
    auth = BasicAuthenticator(store, BasicConfig(), passwords)
    p = await auth.authenticate(req(basic("erin", "s3cret pass")))
    assert p.roles == {"ops"}
    await store.disable("erin")
    with pytest.raises(InvalidToken):
        await auth.authenticate(req(basic("erin", "s3cret pass")))
    passwords.close()
    await engine.dispose()
