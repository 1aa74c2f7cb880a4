"""A hung server, deterministically: a TCP proxy to a real one that can stall."""

from __future__ import annotations

import asyncio
import contextlib


class StallingProxy:
    """Forwards loopback TCP to ``target_port`` (PostgreSQL, say). Stalled, it still
    accepts connections and reads what clients send, but forwards nothing either way:
    the server looks alive and never answers. :meth:`resume` drops the connections that
    stalled (their conversation is broken) and forwards again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.stalled = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stalled: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def stall(self) -> None:
        self.stalled = True

    def resume(self) -> None:
        self.stalled = False
        for writer in self._stalled:
            writer.close()
        self._stalled.clear()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.stalled:
            self._stalled.add(writer)
            self._spawn(self._pipe(reader, None, (writer,)))
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.add(up_writer)
        pair = (writer, up_writer)
        self._spawn(self._pipe(reader, up_writer, pair))
        self._spawn(self._pipe(up_reader, writer, pair))

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter | None,
        pair: tuple[asyncio.StreamWriter, ...],
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self.stalled or writer is None:
                    self._stalled.update(pair)  # read and dropped: a hung server
                    continue
                writer.write(data)
                await writer.drain()
        for end in pair:
            end.close()
