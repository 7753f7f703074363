"""NRI's connection multiplexer over a real socket pair, fed with hand-built and captured bytes."""

from __future__ import annotations

import asyncio
import json

import pytest
from ttrpc.wirekit import mux_frame, socket_pair, split_frames, ttrpc_msg

from cnidra.errors import ProtocolError
from cnidra.ttrpc import Mux, read_message
from support import SHARED

VECTORS = SHARED / "protocol/vectors/containerd-2.4-nri-0.12.2"


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        return await reader.read()


async def test_captured_runtime_stream_reassembles_per_connection() -> None:
    raw = (VECTORS / "mux-stream.bin").read_bytes()
    index = json.loads((VECTORS / "index.json").read_text())["mux_stream"]
    (r1, w1), (_r2, w2) = await socket_pair()
    mux = Mux(r1, w1)
    conn1, conn2 = mux.open(1), mux.open(2)
    mux.start()
    w2.write(raw)
    w2.write_eof()
    async with asyncio.timeout(5):
        reply = await read_message(conn2)
        assert reply is not None and (reply.stream_id, reply.type, reply.payload) == (1, 2, b"")
        assert await read_message(conn2) is None
        got = []
        while (msg := await read_message(conn1)) is not None:
            got.append(msg)
    expected = [f for f in index["frames"] if f["mux_connID"] == 1 and
                f.get("message_part", "1 of 1").startswith("1 ")]
    assert [m.stream_id for m in got] == [f["ttrpc_stream"] for f in expected]
    assert len(got) == 20
    assert len(got[1].payload) + 10 == 4178  # Synchronize, sent as 4096 + 82 bytes
    await mux.close()
    w2.close()


async def test_writes_are_split_at_max_frame_and_frames_for_others_dropped() -> None:
    (r1, w1), (r2, w2) = await socket_pair()
    mux = Mux(r1, w1, max_frame=4096)
    conn = mux.open(1)
    mux.start()
    await conn.write(b"a" * 10000)
    await conn.write(b"")
    # the peer sends: a frame for unopened conn 7, for reserved conn 0, then interleaved data
    w2.write(mux_frame(7, b"nobody") + mux_frame(0, b"reserved") + mux_frame(1, b"he") +
             mux_frame(7, b"xx") + mux_frame(1, b"llo"))
    await w2.drain()
    async with asyncio.timeout(5):
        assert await conn.readexactly(5) == b"hello"
    await mux.close()
    frames = split_frames(await _read_all(r2))
    assert [(c, len(p)) for c, p in frames] == [(1, 4096), (1, 4096), (1, 1808), (1, 0)]
    w2.close()


async def test_interleaved_connections_keep_their_own_byte_streams() -> None:
    (r1, w1), (_r2, w2) = await socket_pair()
    mux = Mux(r1, w1)
    c1, c2 = mux.open(1), mux.open(2)
    mux.start()
    m1, m2 = ttrpc_msg(1, 1, b"A" * 300), ttrpc_msg(1, 2, b"B" * 200)
    w2.write(mux_frame(1, m1[:7]) + mux_frame(2, m2[:150]) + mux_frame(1, m1[7:]) +
             mux_frame(2, m2[150:]))
    await w2.drain()
    async with asyncio.timeout(5):
        a, b = await asyncio.gather(read_message(c1), read_message(c2))
    assert a is not None and a.payload == b"A" * 300
    assert b is not None and b.payload == b"B" * 200
    await mux.close()
    w2.close()


@pytest.mark.parametrize(("data", "needle"), [
    (b"\x00\x00\x00\x01\x00\x41\x00\x0b", "exceeds the limit of 4194314"),
    (mux_frame(1, b"abcdef")[:-3], "truncated mux frame for conn 1: 3 of 6"),
    (b"\x00\x00\x00\x01\x00", "truncated mux header: 5 of 8"),
])
async def test_malformed_mux_bytes_fail_every_connection_and_close(data: bytes,
                                                                   needle: str) -> None:
    (r1, w1), (r2, w2) = await socket_pair()
    mux = Mux(r1, w1)
    c1, c2 = mux.open(1), mux.open(2)
    mux.start()
    w2.write(data)
    w2.write_eof()
    async with asyncio.timeout(5):
        for conn in (c1, c2):
            with pytest.raises(ProtocolError, match=needle):
                await conn.readexactly(1)
        await mux.wait_closed()
        assert await r2.read() == b""  # our side closed the socket
    assert mux.closed and mux.error is not None
    with pytest.raises(ConnectionResetError):
        await c1.write(b"late")
    await mux.close()
    w2.close()


async def test_conn_ids_are_checked_and_a_closed_conn_drops_frames() -> None:
    (r1, w1), (_r2, w2) = await socket_pair()
    mux = Mux(r1, w1)
    with pytest.raises(ValueError, match="reserved"):
        mux.open(0)
    c1 = mux.open(1)
    with pytest.raises(ValueError, match="already open"):
        mux.open(1)
    c2 = mux.open(2)
    mux.start()
    c1.close()
    w2.write(mux_frame(1, b"dropped") + mux_frame(2, b"kept"))
    await w2.drain()
    async with asyncio.timeout(5):
        assert await c2.readexactly(4) == b"kept"
    with pytest.raises(asyncio.IncompleteReadError):
        await c1.readexactly(1)
    w2.close()  # peer EOF: the mux closes and its conns see EOF
    async with asyncio.timeout(5):
        await mux.wait_closed()
        assert await read_message(c2) is None
    await mux.close()
