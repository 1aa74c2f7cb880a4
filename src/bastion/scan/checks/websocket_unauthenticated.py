"""A WebSocket opens without credentials where the same path's HTTP requests need them."""

from __future__ import annotations

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks._base import Check
from bastion.scan.checks._sockets import open_socket, sockets, spoke


class WebSocketUnauthenticated(Check):
    id = "websocket_unauthenticated"
    title = "WebSocket opens without credentials"
    severity = Severity.HIGH
    owasp = Owasp.API2
    cwe = 306
    why = (
        "The path refuses HTTP requests without credentials, but its WebSocket handshake "
        "is accepted without any: authentication that runs for HTTP only (an http-only "
        "middleware, a gateway that does not see the upgrade) leaves the socket open."
    )
    fix = (
        "Authenticate the WebSocket handshake itself, before accepting it, with the same "
        "rules as the HTTP routes (a gateway or middleware that sees WebSocket scopes too)."
    )
    depends_on_answers = "probes only the paths that switched to WebSocket for an identity"

    async def run(self, ctx: ScanContext) -> None:
        if not ctx.identities:
            return
        for sock in await sockets(ctx):
            anon = await open_socket(ctx, sock.path, None, None)
            if anon is None:
                continue
            plain = await ctx.send("GET", sock.path)
            refused = plain is not None and plain.status in (401, 403)
            if not refused and not (sock.op is not None and sock.op.secured):
                continue  # nothing says this path needs credentials: a public socket
            evidence = [ctx.evidence(anon, "the handshake with no credential was accepted")]
            if plain is not None and refused:
                evidence.append(ctx.evidence(plain, "a plain GET with no credential"))
            if spoke(anon):
                ctx.report(self.finding(ctx.target.url(sock.path), evidence))
            else:
                ctx.report(
                    self.finding(
                        ctx.target.url(sock.path),
                        evidence,
                        severity=Severity.MEDIUM,
                        detail=(
                            "The socket stayed open without credentials but sent nothing "
                            "on its own, and the scanner sends no messages: check whether "
                            "it authenticates its first message."
                        ),
                    )
                )
