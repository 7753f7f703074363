"""NRI's connection multiplexer: logical byte-stream connections over one stream socket.

Each frame is an 8-byte header (conn id BE u32, payload length BE u32) and the payload. A
logical connection is a byte stream: a message written to it may be split over several frames
(at ``max_frame``), and a reader must reassemble. Conn id 0 is reserved; frames for a conn id
nobody opened are dropped. A malformed frame (oversize) or a stream cut inside a frame fails
every logical connection with ``ProtocolError`` and closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct

from cnidra.errors import ProtocolError
from cnidra.ttrpc._wire import HEADER_SIZE, MAX_MESSAGE

log = logging.getLogger(__name__)

MUX_HEADER = struct.Struct(">II")
MUX_HEADER_SIZE = MUX_HEADER.size  # 8
MAX_FRAME = HEADER_SIZE + MAX_MESSAGE  # NRI's limit on one frame's payload
_CLOSE_TIMEOUT = 2.0


class MuxConn:
    """One logical connection: a ``ByteStream`` (``readexactly``/``write``/``close``)."""

    def __init__(self, mux: Mux, conn_id: int) -> None:
        self._mux = mux
        self.conn_id = conn_id
        self._reader = asyncio.StreamReader()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def readexactly(self, n: int) -> bytes:
        return await self._reader.readexactly(n)

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError(f"mux connection {self.conn_id} is closed")
        await self._mux._write(self.conn_id, data)

    def close(self) -> None:
        """Close this logical connection locally (later frames for it are dropped)."""
        if not self._closed:
            self._closed = True
            self._mux._forget(self.conn_id)
            self._reader.feed_eof()

    def _feed(self, data: bytes) -> None:
        self._reader.feed_data(data)

    def _fail(self, exc: Exception | None) -> None:
        self._closed = True
        if exc is None:
            self._reader.feed_eof()
        else:
            self._reader.set_exception(exc)


class Mux:
    """Demultiplexes one stream socket into ``MuxConn`` logical connections.

    ``open()`` the conn ids you use, then ``start()``; ``close()`` ends everything.
    ``max_frame`` bounds the frames we write (frames we read may be up to ``MAX_FRAME``).
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
        max_frame: int = MAX_FRAME, max_read_frame: int = MAX_FRAME,
    ) -> None:
        if max_frame <= 0:
            raise ValueError("max_frame must be positive")
        self._reader = reader
        self._writer = writer
        self._max_frame = max_frame
        self._max_read_frame = max_read_frame
        self._conns: dict[int, MuxConn] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._done = asyncio.Event()
        self.error: ProtocolError | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def open(self, conn_id: int) -> MuxConn:
        if conn_id == 0:
            raise ValueError("mux conn id 0 is reserved")
        if not 0 < conn_id < 1 << 32:
            raise ValueError(f"mux conn id {conn_id} is out of range")
        if self._closed:
            raise ConnectionResetError("mux is closed")
        if conn_id in self._conns:
            raise ValueError(f"mux conn id {conn_id} is already open")
        conn = self._conns[conn_id] = MuxConn(self, conn_id)
        return conn

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._read_loop(), name="ttrpc-mux-reader")

    async def wait_closed(self) -> None:
        """Until the socket closed (peer EOF, protocol error or ``close()``)."""
        await self._done.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._shutdown(None)
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self._writer.wait_closed()

    async def _write(self, conn_id: int, data: bytes) -> None:
        async with self._lock:
            if self._closed or self._writer.is_closing():
                raise ConnectionResetError("mux socket is closed")
            view = memoryview(data)
            for start in range(0, max(len(view), 1), self._max_frame):
                chunk = view[start:start + self._max_frame]
                self._writer.write(MUX_HEADER.pack(conn_id, len(chunk)) + bytes(chunk))
            await self._writer.drain()

    def _forget(self, conn_id: int) -> None:
        self._conns.pop(conn_id, None)

    async def _read_loop(self) -> None:
        error: ProtocolError | None = None
        try:
            while True:
                try:
                    header = await self._reader.readexactly(MUX_HEADER_SIZE)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        error = ProtocolError(
                            f"truncated mux header: {len(exc.partial)} of {MUX_HEADER_SIZE} "
                            "bytes before end of stream")
                    break
                conn_id, length = MUX_HEADER.unpack(header)
                if length > self._max_read_frame:
                    error = ProtocolError(
                        f"mux frame of {length} bytes for conn {conn_id} exceeds the limit of "
                        f"{self._max_read_frame} bytes")
                    break
                try:
                    payload = await self._reader.readexactly(length)
                except asyncio.IncompleteReadError as exc:
                    error = ProtocolError(
                        f"truncated mux frame for conn {conn_id}: {len(exc.partial)} of "
                        f"{length} bytes before end of stream")
                    break
                conn = self._conns.get(conn_id)
                if conn is None:
                    log.debug("dropped a %d-byte mux frame for unopened conn %d", length, conn_id)
                    continue
                conn._feed(payload)
        except OSError as exc:
            log.debug("mux socket read failed: %s", exc)
        if error is not None:
            log.warning("closing the connection: %s", error)
        self._shutdown(error)

    def _shutdown(self, error: ProtocolError | None) -> None:
        if self._closed:
            return
        self._closed = True
        if error is not None:
            self.error = error
        for conn in list(self._conns.values()):
            conn._fail(error)
        self._conns.clear()
        self._writer.close()
        self._done.set()
