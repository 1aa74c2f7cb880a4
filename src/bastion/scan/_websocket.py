"""Just enough of RFC 6455 for a probe: a handshake's headers, the proof that the
target really switched to WebSocket, and the frames a server sends first.

The scanner never sends a message on a socket it opens (that could act on the
target); it listens briefly to what the server says on its own, then drops the
connection.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8


@dataclass(frozen=True)
class Handshake:
    """The headers of one opening handshake and the answer that proves it worked."""

    headers: dict[str, str]
    accept: str


def handshake(origin: str | None) -> Handshake:
    """A fresh handshake (a browser's, when ``origin`` is given)."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
    }
    if origin is not None:
        headers["Origin"] = origin
    return Handshake(headers, accept_for(key))


def accept_for(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a WebSocket server answers to ``key``."""
    digest = hashlib.sha1(key.encode() + _GUID).digest()  # noqa: S324 - RFC 6455's own
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        if self.opcode != CLOSE or len(self.payload) < 2:
            return None
        return int.from_bytes(self.payload[:2], "big")


def frames(data: bytes) -> list[Frame]:
    """The whole frames at the start of ``data`` (what a server sent: unmasked);
    a partial or malformed frame ends the list."""
    out: list[Frame] = []
    at = 0
    while len(data) - at >= 2:
        opcode, size = data[at] & 0x0F, data[at + 1] & 0x7F
        masked = data[at + 1] & 0x80
        head = 2
        if size == 126:
            head, size = 4, int.from_bytes(data[at + 2 : at + 4], "big")
        elif size == 127:
            head, size = 10, int.from_bytes(data[at + 2 : at + 10], "big")
        if masked:
            head += 4  # servers must not mask; read past the key all the same
        end = at + head + size
        if end > len(data):
            break
        payload = data[at + head : end]
        if masked:
            mask = data[at + head - 4 : at + head]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        out.append(Frame(opcode, payload))
        at = end
    return out


def first_words(data: bytes) -> Frame | None:
    """The first data or close frame the server sent (control pings skipped)."""
    return next((f for f in frames(data) if f.opcode in (TEXT, BINARY, CLOSE)), None)


def describe(data: bytes) -> str:
    """What the server said on a socket, as text for a report."""
    lines = []
    for frame in frames(data):
        if frame.opcode == TEXT:
            lines.append("[message] " + frame.payload.decode("utf-8", "replace"))
        elif frame.opcode == BINARY:
            lines.append(f"[binary message, {len(frame.payload)} bytes]")
        elif frame.opcode == CLOSE:
            lines.append(f"[close {frame.close_code}]")
    return "\n".join(lines) or "[no message within the probe's wait]"
