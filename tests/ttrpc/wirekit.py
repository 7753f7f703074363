"""Hand-built wire bytes and in-memory streams for the ttrpc tests."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterable

from cnidra.ttrpc._proto import ttrpc_pb2


def ttrpc_msg(stream_id: int, mtype: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">IIBB", len(payload), stream_id, mtype, flags) + payload


def mux_frame(conn_id: int, payload: bytes) -> bytes:
    return struct.pack(">II", conn_id, len(payload)) + payload


def request(service: str, method: str, payload: bytes = b"", timeout_nano: int = 0,
            metadata: Iterable[tuple[str, str]] = ()) -> bytes:
    return ttrpc_pb2.Request(
        service=service, method=method, payload=payload, timeout_nano=timeout_nano,
        metadata=[ttrpc_pb2.KeyValue(key=k, value=v) for k, v in metadata],
    ).SerializeToString()


def split_messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(stream id, type, flags, payload) of each ttrpc message in ``data``."""
    out = []
    while data:
        length, sid, mtype, flags = struct.unpack(">IIBB", data[:10])
        out.append((sid, mtype, flags, data[10:10 + length]))
        data = data[10 + length:]
    return out


def split_frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        conn, length = struct.unpack(">II", data[:8])
        out.append((conn, data[8:8 + length]))
        data = data[8 + length:]
    return out


class BytesStream:
    """A ByteStream that reads the given bytes (then EOF) and collects what is written."""

    def __init__(self, data: bytes = b"", *, eof: bool = True) -> None:
        self.reader = asyncio.StreamReader()
        self.reader.feed_data(data)
        if eof:
            self.reader.feed_eof()
        self.written = bytearray()
        self.closed = False

    async def readexactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        self.written += data

    def close(self) -> None:
        self.closed = True


async def socket_pair() -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter],
                                 tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return (await asyncio.open_unix_connection(sock=a),
            await asyncio.open_unix_connection(sock=b))
