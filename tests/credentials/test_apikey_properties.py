"""Property tests: any input to the API key parser/authenticator ends in a bastion error."""

from __future__ import annotations

import asyncio
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from bastion.config import ApiKeyConfig
from bastion.credentials._keyformat import KeyFormat, _checksum
from bastion.credentials.apikey import ApiKeyAuthenticator, ApiKeys
from bastion.errors import BastionError, InvalidToken
from bastion.model import RequestView
from bastion.store import ApiKeyRecord, ApiKeyStore

FMT = KeyFormat("bst_")


class EmptyStore(ApiKeyStore):
    def __init__(self) -> None:
        pass

    async def get_by_key_id(self, key_id: str) -> ApiKeyRecord | None:
        return None

    async def touch_last_used(self, used: dict[str, datetime]) -> None:  # type: ignore[override]
        return None


AUTH = ApiKeyAuthenticator(ApiKeys(EmptyStore(), b"k" * 32, ApiKeyConfig()), ApiKeyConfig())

key_like = st.builds(
    lambda body, tail: "bst_" + body + tail,
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567_", max_size=20),
    st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", max_size=60),
)


@given(st.one_of(st.text(max_size=200), key_like))
def test_parse_returns_a_key_or_invalid_token(token: str) -> None:
    try:
        parsed = FMT.parse(token)
    except InvalidToken as exc:
        reason = exc.reason
        assert reason in {"api_key_malformed", "api_key_bad_checksum"}
        return
    assert token == f"bst_{parsed.key_id}_" + token[17:]
    assert token[-6:] == _checksum(token[:-6])


@given(
    st.dictionaries(
        st.sampled_from(["x-api-key", "authorization", "accept"]),
        st.one_of(st.text(max_size=100), key_like.map(lambda k: "Bearer " + k)),
    ),
    st.text(max_size=60),
)
def test_authenticate_raises_only_bastion_errors(headers: dict[str, str], query: str) -> None:
    request = RequestView(method="GET", path="/", query=query, headers=headers)
    AUTH.present(request)
    AUTH.account(request)
    try:
        asyncio.run(AUTH.authenticate(request))
    except BastionError:
        return
    raise AssertionError("an unknown key was accepted")


def test_generated_keys_always_parse() -> None:
    for _ in range(200):
        key = FMT.generate()
        assert FMT.parse(key).key_id == key[4:16]
