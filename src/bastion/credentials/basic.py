"""HTTP Basic authentication (RFC 7617) against argon2id password hashes.

Strict parsing: the credentials must be canonical base64 of UTF-8 ``user-id ":" password``
(RFC 7617 §2, §2.1 ``charset="UTF-8"``), neither part may hold control characters, and
sizes are bounded *before* decoding so an oversized password never reaches argon2.
Both parts are NFC-normalised (RFC 7613 profiles, simplified), here and when stored.

Basic sends the password itself, so it is refused over plain HTTP unless the client is on
loopback or ``basic.allow_insecure_http`` says otherwise. Nothing is cached: a changed
password or a disabled user takes effect on the next request.
"""

from __future__ import annotations

import binascii
import ipaddress
import logging
import unicodedata
from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from typing import Protocol

from bastion.config import AuthMethod, BasicConfig
from bastion.credentials._passwords import Passwords
from bastion.errors import BastionError, CredentialRefused, InvalidToken
from bastion.model import CredentialType, Principal, RequestView
from bastion.store.users import UserRecord

log = logging.getLogger(__name__)

MAX_USERNAME_CHARS = 255
MAX_PASSWORD_BYTES = 1024
# base64 of the longest acceptable "user:password" (255 chars of up to 4 UTF-8 bytes each).
MAX_ENCODED = 4 * -(-(MAX_USERNAME_CHARS * 4 + 1 + MAX_PASSWORD_BYTES) // 3)
PUBLIC_DETAIL = "The username or password is incorrect."


class UserLookup(Protocol):
    """The part of :class:`bastion.store.UserStore` Basic needs."""

    async def get_by_username(self, username: str) -> UserRecord | None: ...

    async def set_password(self, username: str, password_hash: str) -> UserRecord: ...


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    username: str
    password: str = field(repr=False)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def check_username(username: str) -> str:
    """The NFC form of a valid username; raises ValueError with the problem otherwise."""
    username = unicodedata.normalize("NFC", username)
    if not username:
        raise ValueError("username is empty")
    if len(username) > MAX_USERNAME_CHARS:
        raise ValueError(f"username is longer than {MAX_USERNAME_CHARS} characters")
    if ":" in username:
        raise ValueError("username must not contain ':' (RFC 7617 §2)")
    if _has_control(username) or username != username.strip():
        raise ValueError("username must not contain control characters or edge spaces")
    return username


def check_password(password: str) -> str:
    """The NFC form of an acceptable password; raises ValueError otherwise."""
    password = unicodedata.normalize("NFC", password)
    if not password:
        raise ValueError("password is empty")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password is longer than {MAX_PASSWORD_BYTES} bytes")
    if _has_control(password):
        raise ValueError("password must not contain control characters (RFC 7617 §2)")
    return password


def _invalid(reason: str) -> InvalidToken:
    return InvalidToken(reason, detail=PUBLIC_DETAIL)


def _basic_token(header: str) -> str | None:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    return token.strip(" ")


def parse_basic(header: str) -> BasicCredentials:
    """Parse an ``Authorization: Basic ...`` value. Raises InvalidToken, nothing else."""
    token = _basic_token(header)
    if token is None:
        raise _invalid("basic_not_basic")
    if len(token) > MAX_ENCODED:
        raise _invalid("basic_too_long")
    try:
        raw = b64decode(token.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise _invalid("basic_bad_base64") from None
    if b64encode(raw) != token.encode("ascii"):  # non-canonical padding bits
        raise _invalid("basic_bad_base64")
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _invalid("basic_bad_utf8") from None
    username, colon, password = text.partition(":")
    if not colon:
        raise _invalid("basic_no_colon")
    try:
        return BasicCredentials(check_username(username), check_password(password))
    except ValueError:
        raise _invalid("basic_bad_credentials_syntax") from None


def is_loopback(client_ip: str) -> bool:
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


class BasicAuthenticator:
    """The ``basic`` auth method.

    Args:
        users: a :class:`bastion.store.UserStore` (or anything with its two methods).
        config: ``Config.basic``.
        passwords: the shared bounded argon2 verifier.
    """

    method = AuthMethod.BASIC
    credential_headers: tuple[str, ...] = ()  # every password is checked

    def __init__(self, users: UserLookup, config: BasicConfig, passwords: Passwords) -> None:
        self._users = users
        self._config = config
        self._passwords = passwords
        realm = config.realm.replace("\\", "\\\\").replace('"', '\\"')
        self._challenge = f'Basic realm="{realm}", charset="UTF-8"'

    def present(self, request: RequestView) -> bool:
        return _basic_token(request.headers.get("authorization", "")) is not None

    def account(self, request: RequestView) -> str | None:
        try:
            return parse_basic(request.headers.get("authorization", "")).username
        except BastionError:
            return None

    def challenge(self, error: str | None = None) -> str:
        # RFC 7617 defines no error parameter; the realm and charset are all a client needs.
        return self._challenge

    def _check_transport(self, request: RequestView) -> None:
        if request.secure or self._config.allow_insecure_http or is_loopback(request.client_ip):
            return
        raise CredentialRefused(
            "basic_over_http",
            detail="HTTP Basic credentials must be sent over TLS (https); "
            "change the password, since it was sent in clear.",
        )

    def authenticate_now(self, request: RequestView) -> Principal | None:
        return None  # every password is checked (argon2id, off the event loop)

    def revalidator(self, request: RequestView, principal: Principal) -> None:
        return None  # credential_headers is empty: never asked

    async def authenticate(self, request: RequestView) -> Principal:
        self._check_transport(request)
        creds = parse_basic(request.headers.get("authorization", ""))
        user = await self._users.get_by_username(creds.username)
        if user is None or user.disabled:
            # Same work as a real check, so timing does not reveal which users exist.
            await self._passwords.verify_dummy(creds.password)
            raise _invalid("unknown_user" if user is None else "disabled")
        if not await self._passwords.verify(user.password_hash, creds.password):
            raise _invalid("bad_password")
        if self._passwords.needs_rehash(user.password_hash):
            await self._rehash(user.username, creds.password)
        return Principal(
            subject=user.username,
            credential=CredentialType.BASIC,
            roles=frozenset(user.roles),
        )

    async def _rehash(self, username: str, password: str) -> None:
        try:
            await self._users.set_password(username, await self._passwords.hash(password))
        except BastionError as exc:  # the login itself was good; upgrade next time
            log.warning("password rehash failed for a user: %s", exc.reason)
