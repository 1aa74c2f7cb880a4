"""The small pieces of bastion.gateway.websocket: close codes, and the subprotocols a
browser's token travels in."""

from __future__ import annotations

import pytest

from bastion.errors import BastionError, InvalidToken, RateLimited, Unavailable
from bastion.gateway import websocket as ws
from bastion.gateway.decision import Decision


@pytest.mark.parametrize(
    ("code", "sent"),
    [(1000, 1000), (4002, 4002), (1008, 1008), (None, 1000), (1005, 1000), (1006, 1000),
     (1015, 1000), (999, 1000), (2000, 1000), (5000, 1000)],
)  # fmt: skip
def test_only_codes_a_close_frame_may_carry_are_sent(code: int | None, sent: int) -> None:
    assert ws.sendable(code) == sent


def test_a_refused_recheck_closes_as_policy_or_as_try_again() -> None:
    def denied(error: BastionError, status: int) -> Decision:
        return Decision(allowed=False, status=status, request_id="r", error=error)

    assert ws.close_for(denied(InvalidToken("token_expired"), 401)) == (1008, "invalid_token")
    limited = RateLimited("x", retry_after=1, headers=[])
    assert ws.close_for(denied(limited, 429)) == (1013, "rate_limited")
    unavailable = Unavailable("audit_unavailable")
    assert ws.close_for(denied(unavailable, 503)) == (1013, "temporarily_unavailable")


def test_a_token_offered_as_a_subprotocol_is_a_bearer_credential() -> None:
    headers = {"host": "a"}
    offered = ["bastion", " bastion.bearer.tok.en ", "feed.v1"]
    assert ws.protocol_credential(headers, offered)["authorization"] == "Bearer tok.en"
    assert "authorization" not in headers  # a copy
    # A header sent too wins; without a bastion.bearer entry nothing changes.
    with_header = {"authorization": "Bearer other"}
    assert ws.protocol_credential(with_header, offered) is with_header
    assert ws.protocol_credential(headers, ["feed.v1", "bastion"]) is headers


def test_bastions_own_subprotocols_stay_with_bastion() -> None:
    offered = ["bastion", "bastion.bearer.tok", "feed.v1", "bastionish"]
    assert ws.app_protocols(offered) == ["feed.v1", "bastionish"]
    assert ws.chosen_protocol(offered, "feed.v1") == "feed.v1"
    assert ws.chosen_protocol(offered, None) == "bastion"  # a browser needs one named
    assert ws.chosen_protocol(["feed.v1"], None) is None
