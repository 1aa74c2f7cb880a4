"""Property tests: the Basic parser turns any input into credentials or InvalidToken."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from bastion.credentials.basic import check_password, check_username, parse_basic
from bastion.errors import InvalidToken


@given(st.text(max_size=3000))
def test_any_header_text_parses_or_is_invalid_token(header: str) -> None:
    try:
        creds = parse_basic(header)
    except InvalidToken:
        return
    assert ":" not in creds.username


@given(st.binary(max_size=2000))
def test_any_decoded_bytes_parse_or_are_invalid_token(raw: bytes) -> None:
    try:
        creds = parse_basic("Basic " + base64.b64encode(raw).decode())
    except InvalidToken:
        return
    # Whatever gets through is exactly what was sent, in NFC form.
    user, _, password = raw.decode().partition(":")
    assert creds.username == check_username(user)
    assert creds.password == check_password(password)


@given(
    st.text(
        alphabet=st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=":"),
        min_size=1,
        max_size=50,
    ).filter(lambda s: s == s.strip()),
    st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=200),
)
def test_round_trip(user: str, password: str) -> None:
    header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    creds = parse_basic(header)
    assert creds.username == check_username(user)
    assert creds.password == check_password(password)
