"""Cross-site WebSocket hijacking: a handshake from any page, with a victim's cookie or
Basic credentials, is accepted."""

from __future__ import annotations

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks._base import Check
from bastion.scan.checks._sockets import EVIL, open_socket, sockets
from bastion.scan.checks.cookie_flags import sent_cross_site


def _ambient(ctx: ScanContext) -> list[tuple[Identity, str]]:
    """Identities as a browser would present them by itself to another site's page:
    a session cookie it would send cross-site, or cached Basic credentials."""
    out = []
    for ident in ctx.identities:
        jar = ident.cookie_only()
        if jar is not None and sent_cross_site(ctx, jar):
            out.append((jar, f"only {ident.name}'s session cookie"))
        elif ident.kind == "basic":
            out.append((ident, f"{ident.name}'s Basic credentials"))
    return out


class WebSocketOrigin(Check):
    id = "websocket_origin"
    title = "Cross-site WebSocket hijacking"
    severity = Severity.HIGH
    owasp = Owasp.API8
    cwe = 1385
    why = (
        "Browsers attach cookies and cached Basic credentials to a WebSocket handshake "
        "whichever page opens it, and the same-origin policy does not apply to "
        "WebSockets: any site a victim visits can open this socket as the victim and "
        "read and send its messages."
    )
    fix = (
        "Check the handshake's Origin header against an allow-list of the API's own web "
        "origins (refuse 'null'), or authenticate sockets with a token the page must "
        "send, not with cookies or Basic."
    )
    depends_on_answers = "probes only the paths that switched to WebSocket for an identity"

    async def run(self, ctx: ScanContext) -> None:
        ambient = _ambient(ctx)
        if not ambient:
            return
        for sock in await sockets(ctx):
            if await open_socket(ctx, sock.path, None, EVIL) is not None:
                continue  # it opens for anyone: not the credential's doing
            for ident, what in ambient:
                hijacked = await open_socket(ctx, sock.path, ident, EVIL)
                if hijacked is None:
                    continue
                note = f"a handshake with Origin {EVIL} and {what} was accepted"
                ctx.report(self.finding(ctx.target.url(sock.path), [ctx.evidence(hijacked, note)]))
                break
