from __future__ import annotations

import ipaddress

import pytest

from bastion.gateway._asgi import Trust, header_dict, request_id

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # an untrusted peer's own X-Forwarded-For is ignored
        ("203.0.113.7", {"x-forwarded-for": "198.51.100.1"}, "203.0.113.7"),
        ("127.0.0.1", {"x-forwarded-for": "198.51.100.1"}, "198.51.100.1"),
        # a client-sent first hop cannot win: the right-most untrusted hop is the client
        ("127.0.0.1", {"x-forwarded-for": "6.6.6.6, 198.51.100.1, 10.1.2.3"}, "198.51.100.1"),
        # garbage in the chain: fall back to the peer rather than guess
        ("127.0.0.1", {"x-forwarded-for": "198.51.100.1, not-an-ip"}, "127.0.0.1"),
        ("127.0.0.1", {"x-real-ip": "198.51.100.2"}, "198.51.100.2"),
        ("127.0.0.1", {"x-real-ip": "nonsense"}, "127.0.0.1"),
        ("127.0.0.1", {"x-forwarded-for": "10.0.0.1, 10.0.0.2"}, "10.0.0.1"),
        ("127.0.0.1", {}, "127.0.0.1"),
        # a hop with the client's port (Azure's proxies add it) is its address, not garbage
        ("127.0.0.1", {"x-forwarded-for": "198.51.100.1:50123"}, "198.51.100.1"),
        ("127.0.0.1", {"x-forwarded-for": "[2001:db8::7]:443, 10.0.0.1"}, "2001:db8::7"),
        ("127.0.0.1", {"x-forwarded-for": "2001:db8::7"}, "2001:db8::7"),
        ("127.0.0.1", {"x-real-ip": "198.51.100.2:1"}, "198.51.100.2"),
        ("127.0.0.1", {"x-forwarded-for": "[2001:db8::7"}, "127.0.0.1"),
    ],
)
def test_client_ip(peer: str, headers: dict[str, str], client: str) -> None:
    assert Trust(LOOPBACK).client_ip(peer, headers) == client


def test_trust_cache_is_bounded() -> None:
    trust = Trust(LOOPBACK)
    for i in range(5000):
        trust.trusted(f"198.51.{i // 256}.{i % 256}")
    assert len(trust._cache) <= 4096
    assert trust.trusted("127.0.0.1")
    assert not trust.trusted("not an address")


def test_header_dict_joins_repeats_and_lowercases() -> None:
    raw = [(b"X-A", b"1"), (b"x-a", b"2"), (b"Host", b"h")]
    assert header_dict(raw) == {"x-a": "1, 2", "host": "h"}


def test_request_id_keeps_only_well_formed_trusted_ids() -> None:
    assert request_id({"x-request-id": "abcdef123456"}, trusted=True) == "abcdef123456"
    assert request_id({"x-request-id": "abcdef123456"}, trusted=False) != "abcdef123456"
    assert request_id({"x-request-id": "bad id\r\n"}, trusted=True) != "bad id\r\n"
    first, second = request_id({}, trusted=False), request_id({}, trusted=False)
    assert first != second
    assert len(first) == 24
