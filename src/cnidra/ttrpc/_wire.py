"""ttrpc message framing: a 10-byte header (payload length BE u32, stream id BE u32, type u8,
flags u8) followed by the payload, read from and written to a byte stream."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from cnidra.errors import ProtocolError

HEADER = struct.Struct(">IIBB")
HEADER_SIZE = HEADER.size  # 10
MAX_MESSAGE = 4 << 20  # ttrpc's limit on one message's payload


class MessageType(IntEnum):
    REQUEST = 1
    RESPONSE = 2
    DATA = 3


class ByteStream(Protocol):
    """A bidirectional byte stream: a socket, or one logical connection of a ``Mux``.

    ``readexactly`` raises ``asyncio.IncompleteReadError`` at end of stream (with the partial
    bytes) and ``ProtocolError`` when the layer below saw malformed bytes."""

    async def readexactly(self, n: int) -> bytes: ...
    async def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class SocketStream:
    """``ByteStream`` over an asyncio reader/writer pair (a plain ttrpc connection)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()

    async def readexactly(self, n: int) -> bytes:
        return await self._reader.readexactly(n)

    async def write(self, data: bytes) -> None:
        async with self._lock:
            if self._writer.is_closing():
                raise ConnectionResetError("stream is closed")
            self._writer.write(data)
            await self._writer.drain()

    def close(self) -> None:
        self._writer.close()


@dataclass(frozen=True, slots=True)
class Message:
    stream_id: int
    type: int
    flags: int
    payload: bytes


def encode(stream_id: int, mtype: int, payload: bytes, flags: int = 0) -> bytes:
    return HEADER.pack(len(payload), stream_id, mtype, flags) + payload


def decode_header(header: bytes, max_message: int = MAX_MESSAGE) -> tuple[int, int, int, int]:
    """(length, stream id, type, flags) of a 10-byte header; ``ProtocolError`` when invalid."""
    length, stream_id, mtype, flags = HEADER.unpack(header)
    if length > max_message:
        raise ProtocolError(
            f"ttrpc message of {length} bytes on stream {stream_id} exceeds the limit of "
            f"{max_message} bytes"
        )
    if mtype not in MessageType.__members__.values():
        raise ProtocolError(f"ttrpc message type {mtype} on stream {stream_id} is unknown")
    if stream_id == 0:
        raise ProtocolError("ttrpc stream id 0 is not allowed")
    return length, stream_id, mtype, flags


async def read_message(stream: ByteStream, max_message: int = MAX_MESSAGE) -> Message | None:
    """The next message, or None at a clean end of stream (between messages)."""
    try:
        header = await stream.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError(
            f"truncated ttrpc header: {len(exc.partial)} of {HEADER_SIZE} bytes before end of "
            "stream"
        ) from None
    length, stream_id, mtype, flags = decode_header(header, max_message)
    try:
        payload = await stream.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            f"truncated ttrpc message on stream {stream_id}: {len(exc.partial)} of {length} "
            "payload bytes before end of stream"
        ) from None
    return Message(stream_id, mtype, flags, payload)
