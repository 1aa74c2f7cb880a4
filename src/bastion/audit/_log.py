"""One JSON line per decision, buffered so the hot path makes no system call.

Lines are appended to a ``bytearray`` and written when the buffer passes
:data:`FLUSH_BYTES`, when the oldest line has waited :data:`FLUSH_SECONDS` (a timer on
the running event loop, or the next ``emit``), and on :meth:`AuditLog.flush` /
:meth:`AuditLog.aclose`. Each write hands whole lines to the kernel, and the file is
opened ``O_APPEND``, so several workers may share one file.

Decision lines (:meth:`AuditLog.emit_decision`) are kept as values and serialised in
batches of up to :data:`PENDING_MAX` (and before any other line, so the order holds):
one tight loop over many lines costs the worker less than the same work spread over
requests.

A write that fails (a full disk, a closed pipe) loses nothing: the unwritten lines stay
buffered and are tried again every :data:`FLUSH_SECONDS`, and the failure and the
recovery are logged once each. Past :data:`BACKLOG_MAX_BYTES` held, :attr:`AuditLog.
blocked` is true: the gateway then denies every request (503) rather than decide what it
cannot record, and ``/readyz`` says ``audit: false``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from bastion.audit._redact import Redactor
from bastion.model import Clock, system_clock

FLUSH_BYTES = 64 * 1024
FLUSH_SECONDS = 1.0
BACKLOG_MAX_BYTES = 32 * 1024 * 1024  # lines held while writes fail; past it: blocked
log = logging.getLogger("bastion.audit")
# The fields of a decision line between the request id and the latency (emit_decision).
DECISION_FIELDS = (
    "client_ip", "method", "host", "path", "route", "front_door", "principal",
    "credential", "key_id", "issuer", "outcome", "status", "reason",
)  # fmt: skip
_FRAGMENTS_MAX = 4096
PENDING_MAX = 256  # decision lines kept as values before they are serialised

_ts_cache: tuple[int, str] = (-1, "")
_ms_cache: tuple[int, str] = (-1, "")


def rfc3339(epoch: float) -> str:
    """``epoch`` as RFC 3339 UTC with milliseconds: ``2025-01-31T12:00:00.123Z``."""
    global _ts_cache, _ms_cache  # one-entry caches: the millisecond, the second's prefix
    second = int(epoch)
    millis = min(999, int((epoch - second) * 1000))
    key = second * 1000 + millis
    if key == _ms_cache[0]:
        return _ms_cache[1]
    cached_second, prefix = _ts_cache
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _ts_cache = (second, prefix)
    text = f"{prefix}.{millis:03d}Z"
    _ms_cache = (key, text)
    return text


def _default(obj: Any) -> str:
    return str(obj)


def _dumps(record: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(record, default=_default, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits: keep the event as text
        text = {str(k): v if isinstance(v, str) else str(v) for k, v in record.items()}
        return orjson.dumps(text, option=orjson.OPT_APPEND_NEWLINE)


class AuditLog:
    """The audit sink: ``"-"`` is standard output, anything else a file appended to.

    Args:
        path: ``"-"`` or a file path (created with mode 0600).
        api_key_prefixes: API-key prefixes to mask wherever they appear.
        clock: seconds since the epoch, for ``ts`` when an event has none.
    """

    def __init__(
        self,
        path: str,
        *,
        api_key_prefixes: Iterable[str] = ("bst_",),
        clock: Clock = system_clock,
    ) -> None:
        self.path = path
        self._fd: int | None = None
        if path != "-":
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(path, flags, 0o600)
        self._redactor = Redactor(api_key_prefixes)
        self._clock = clock
        self._buffer = bytearray()
        self._fragments: dict[tuple[Any, ...], bytes] = {}
        self._pending: list[tuple[float, str, tuple[Any, ...], float]] = []
        self._first_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.failing = False  # the last write failed; lines are held for the next try
        self.dropped = 0  # lines dropped while failing (see _append_held)

    def emit(self, event: Mapping[str, Any], *, plain_keys: bool = False) -> None:
        """Queue one event as a JSON line; never raises for odd values, never blocks.

        ``plain_keys``: the caller vouches that the keys are fixed, non-secret names and
        every value a scalar (the gateway's decision events); only the string values are
        then scanned for secret-looking text, each answer remembered.
        """
        if self._closed:
            raise RuntimeError("audit log is closed")
        if self._pending:
            self._serialise_pending()  # earlier decisions first: lines stay in order
        if "ts" not in event:
            event = {"ts": rfc3339(self._clock()), **event}
        self._append(self._line(event, plain_keys=plain_keys))

    def _line(self, event: Mapping[str, Any], *, plain_keys: bool) -> bytes:
        redactor = self._redactor
        line = None
        if plain_keys:
            known, clean = redactor.known_clean, redactor.clean_value
            for value in event.values():
                if value.__class__ is str and value not in known and not clean(value):
                    break
            else:
                line = _dumps(event)
        elif not redactor.suspicious_keys(event):
            line = _dumps(event)
            if redactor.suspicious_line(line):
                line = None
        if line is None:  # the rare event that needs masking: walk it field by field
            line = _dumps(redactor.mapping(event))
        return line

    def emit_decision(self, request_id: str, values: tuple[Any, ...], latency_ms: float) -> None:
        """One decision line: ``ts``, ``request_id``, then :data:`DECISION_FIELDS` from
        ``values`` (scalars, in that order), then ``latency_ms``.

        The line is the one :meth:`emit` writes for the same event, serialised later (see
        the module's docstring) with the time of this call.
        """
        if self._closed:
            raise RuntimeError("audit log is closed")
        pending = self._pending
        now = self._clock()
        pending.append((now, request_id, values, latency_ms))
        if self.failing:
            self._serialise_pending()  # held at once: the bound counts every line
        elif len(pending) == 1:
            self._arm_timer()
        elif len(pending) >= PENDING_MAX or not 0 <= now - pending[0][0] < FLUSH_SECONDS:
            self._serialise_pending()  # full, or the oldest waited (no loop to time it)

    def _serialise_pending(self) -> None:
        """Turn the pending decisions into lines. The part between the request id and the
        latency repeats across requests (same client, path, route and principal), so it
        is serialised and scanned once and remembered (bounded); a part with anything
        secret-looking is never remembered and goes through :meth:`emit`'s masking."""
        pending, self._pending = self._pending, []
        fragments, plain_id = self._fragments, self._redactor.plain_id.fullmatch
        lines = []  # appended in one piece: one buffer check per batch
        for ts, request_id, values, latency_ms in pending:
            fragment = fragments.get(values)
            safe_id = plain_id(request_id)
            if fragment is None or not safe_id:
                event: dict[str, Any] = {"ts": rfc3339(ts), "request_id": request_id}
                event.update(zip(DECISION_FIELDS, values, strict=True))
                event["latency_ms"] = latency_ms
                if not safe_id or not self._remember(values, event):
                    lines.append(self._line(event, plain_keys=True))
                    continue
                fragment = fragments[values]
            lines.append(
                b'{"ts":"%s","request_id":"%s",%s,"latency_ms":%s}\n'
                % (rfc3339(ts).encode(), request_id.encode(), fragment, orjson.dumps(latency_ms))
            )
        if lines:
            self._append(b"".join(lines))

    def _remember(self, values: tuple[Any, ...], event: dict[str, Any]) -> bool:
        """Keep the serialised middle of a clean decision line; False if it is not clean."""
        clean = self._redactor.clean_value
        middle = {name: event[name] for name in DECISION_FIELDS}
        if not all(clean(v) for v in middle.values() if v.__class__ is str):
            return False
        if len(self._fragments) >= _FRAGMENTS_MAX:
            self._fragments.clear()
        self._fragments[values] = orjson.dumps(middle)[1:-1]
        return True

    @property
    def blocked(self) -> bool:
        """Writes fail and the lines held passed :data:`BACKLOG_MAX_BYTES`."""
        return self.failing and len(self._buffer) > BACKLOG_MAX_BYTES

    @property
    def held_bytes(self) -> int:
        """Bytes held because writes fail (0 while the log is writable)."""
        return len(self._buffer) if self.failing else 0

    def _append(self, line: bytes) -> None:
        if self.failing:
            self._append_held(line)
            return
        now = time.monotonic()
        if not self._buffer:
            self._first_at = now
            self._arm_timer()
        self._buffer += line
        if len(self._buffer) >= FLUSH_BYTES or now - self._first_at >= FLUSH_SECONDS:
            self.flush()

    def _append_held(self, line: bytes) -> None:
        """While writes fail: hold ``line`` for the retry timer, up to twice the bound.
        Past the bound every request is denied, so what arrives beyond twice the bound is
        denials of ``audit_unavailable``: those are dropped (counted), never a line held
        before them."""
        if len(self._buffer) + len(line) > 2 * BACKLOG_MAX_BYTES:
            if not self.dropped:
                log.error("audit log unwritable: dropping new lines past the held ones")
            self.dropped += line.count(b"\n")
            return
        self._buffer += line

    def timestamp(self) -> str:
        """Now, as the ``ts`` of an event (callers that build the event dict add it
        themselves, saving :meth:`emit` a copy)."""
        return rfc3339(self._clock())

    def security_event(self, kind: str, **fields: Any) -> None:
        """A non-decision event: brute force detected, key revoked, refresh token reuse…"""
        self.emit({"ts": rfc3339(self._clock()), "event": "security", "kind": kind, **fields})

    def _arm_timer(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the next emit, flush() or close() writes it
            return
        self._timer = loop.call_later(FLUSH_SECONDS, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write everything buffered."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._serialise_pending()
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()
        view = memoryview(data)
        try:
            if self._fd is None:
                out = sys.stdout.buffer
                out.write(data)
                out.flush()
            else:
                while view:  # kept here: a failed write must leave what is unwritten
                    view = view[os.write(self._fd, view) :]
        except (OSError, ValueError) as exc:  # ValueError: stdout closed
            self._hold(bytes(view), exc)
            return
        if self.failing:
            log.warning(
                "audit log writable again: %d held bytes written, %d later lines dropped",
                len(data),
                self.dropped,
            )
            self.failing = False
            self.dropped = 0

    def _hold(self, unwritten: bytes, exc: Exception) -> None:
        """Keep what a failed write left (before anything buffered since) and try again
        on the timer."""
        self._buffer[:0] = unwritten
        if not self.failing:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            log.error("audit log write failed (%s): holding lines, retrying", reason)
        self.failing = True
        if not self._closed:
            self._arm_timer()

    def close(self) -> None:
        """Flush and release the file; further ``emit`` calls raise."""
        if self._closed:
            return
        self._closed = True
        self.flush()
        if self.failing and self._buffer:
            # Last resort at shutdown: standard error (the service manager's journal).
            try:
                view = memoryview(self._buffer)
                while view:
                    view = view[os.write(2, view) :]
                log.error("audit log unwritable at close: held lines written to stderr")
            except OSError:
                log.error("audit log closed unwritable: %d bytes lost", len(self._buffer))
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def aclose(self) -> None:
        """:meth:`close`, for the application's shutdown hook."""
        self.close()
