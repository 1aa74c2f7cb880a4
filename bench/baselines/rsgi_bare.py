"""Baseline G: an RSGI app on granian that answers every request with a fixed 200 and the
headers of bastion's forward-auth allow reply, deciding nothing — what the server itself
costs per request, the ceiling of rows 1 and 2 (same server, flags, worker count).

Usage: python -m granian --interface rsgi --workers 1 --loop uvloop --no-ws \\
           --working-dir bench/baselines --port PORT rsgi_bare:app
"""

from __future__ import annotations

from typing import Any

REPLY = [
    ("x-bastion-subject", "alice"),
    ("x-bastion-credential", "jwt"),
    ("x-bastion-scopes", "read"),
    ("x-bastion-roles", ""),
    ("x-bastion-issuer", "https://issuer.test"),
    ("x-bastion-client", ""),
    ("x-bastion-key-id", ""),
    ("x-bastion-route", "api"),
    ("x-bastion-request-id", "0123456789abcdef01234567"),
    ("x-bastion-assertion", ""),
    ("ratelimit-policy", '"ip";q=100000000;w=60'),
    ("ratelimit", '"ip";r=99999999;t=30'),
]


class App:
    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        protocol.response_empty(200, REPLY)


app = App()
