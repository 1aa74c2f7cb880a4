"""Property tests: nothing a client sends makes the bearer method raise anything unplanned."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.credentials.bearer import BearerAuthenticator
from bastion.errors import AuthenticationError, BadRequest, InvalidToken
from bastion.model import RequestView
from bastion.tokens._compact import parse_compact
from tests.tokens._helpers import FakeClock, es256, hs_issuer, issuer

# Planned refusals only: 401 (an invalid token, no token, an API key sent as a bearer
# JWT, a token in the query) or 400 (a malformed header). Anything else is a bug.
EXPECTED = (AuthenticationError, BadRequest)
AUTH = BearerAuthenticator.from_config([issuer(), hs_issuer()], clock=FakeClock())
VALID = es256()


def run(value: str, query: str = "") -> None:
    request = RequestView("GET", "/", query=query, headers={"authorization": value})
    try:
        asyncio.run(AUTH.authenticate(request))
    except EXPECTED:
        return
    raise AssertionError(f"accepted {value!r}")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_after_bearer(token: str) -> None:
    run(f"Bearer {token}")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_latin1_header(raw: bytes) -> None:
    run("Bearer " + raw.decode("latin-1"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200), st.binary(max_size=100))
def test_three_arbitrary_base64url_segments(h: bytes, p: bytes, s: bytes) -> None:
    run(f"Bearer {b64(h)}.{b64(p)}.{b64(s)}")


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_arbitrary_json_header_and_claims(header: object, payload: object) -> None:
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(payload).encode())
    run(f"Bearer {h}.{p}.{VALID.split('.')[2]}")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(VALID) - 1), st.characters())
def test_single_character_mutations_of_a_valid_token(position: int, char: str) -> None:
    mutated = VALID[:position] + char + VALID[position + 1 :]
    if mutated != VALID:
        # The strict decoder refuses every non-canonical spelling, so no mutation that
        # decodes to the same bytes slips through.
        run(f"Bearer {mutated}")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=100))
def test_arbitrary_query_strings(query: str) -> None:
    request = RequestView("GET", "/", query=query, headers={"authorization": "Bearer x"})
    try:
        asyncio.run(AUTH.authenticate(request))
    except EXPECTED:
        return
    raise AssertionError("accepted")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parser_only_raises_invalid_token(token: str) -> None:
    with contextlib.suppress(InvalidToken):
        parse_compact(token).claims()
