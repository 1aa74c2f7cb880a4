"""uvicorn's h11 protocol with a deadline on each request head (``bastion serve
--server uvicorn`` only; imported by uvicorn by name, in every worker).

uvicorn bounds a head's size but not its time: a connection that sends nothing, or a
head a byte at a time, is held open for good (its keep-alive timer only runs between
requests and stops at the first byte), so a few hundred such connections exhaust the
worker's file descriptors ("slowloris"). granian's ``header_read_timeout`` closes them;
this gives uvicorn the same bound, ``limits.head_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# bastion/_server.py sets it before uvicorn starts; spawned workers inherit it.
ENV = "BASTION_HEAD_TIMEOUT"


class HeadDeadlineProtocol(H11Protocol):
    """Closes a connection whose request head is not whole within the deadline, counted
    from the connection's start or from the first byte of a later request's head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_seconds = float(os.environ.get(ENV, "30"))
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a head has begun and is not whole yet
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_seconds, self._expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
