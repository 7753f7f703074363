"""ttrpc framing from hand-built bytes: valid, truncated, oversize, unknown types."""

from __future__ import annotations

from pathlib import Path

import pytest
from ttrpc.wirekit import BytesStream, ttrpc_msg

from cnidra.errors import ProtocolError
from cnidra.ttrpc import HEADER_SIZE, MessageType, decode_header, encode, read_message
from support import SHARED

VECTORS = SHARED / "protocol/vectors/containerd-2.4-nri-0.12.2"


def test_header_layout_is_big_endian_length_stream_type_flags() -> None:
    wire = bytes.fromhex("00000002" "00000005" "01" "00") + b"ab"
    assert encode(5, MessageType.REQUEST, b"ab") == wire
    assert HEADER_SIZE == 10
    assert decode_header(bytes.fromhex("000000040000000b0200")) == (4, 11, 2, 0)


def test_the_runtimes_bare_register_reply_decodes() -> None:
    raw = (VECTORS / "02-runtime-to-plugin-RegisterPlugin.response.bin").read_bytes()
    assert decode_header(raw) == (0, 1, MessageType.RESPONSE, 0)


async def test_reads_consecutive_messages_then_none_at_clean_eof() -> None:
    stream = BytesStream(ttrpc_msg(1, 1, b"one") + ttrpc_msg(3, 1, b"") + ttrpc_msg(5, 3, b"x", 4))
    got = [await read_message(stream) for _ in range(4)]
    assert [(m.stream_id, m.type, m.flags, m.payload) for m in got if m] == [
        (1, 1, 0, b"one"), (3, 1, 0, b""), (5, 3, 4, b"x")]
    assert got[3] is None


@pytest.mark.parametrize(("data", "needle"), [
    (bytes.fromhex("0000000100"), "truncated ttrpc header: 5 of 10"),
    (ttrpc_msg(1, 1, b"abcdef")[:-2], "truncated ttrpc message on stream 1: 4 of 6"),
    (bytes.fromhex("01000000" "00000001" "01" "00"), "exceeds the limit of 4194304"),
    (ttrpc_msg(1, 9, b""), "message type 9 on stream 1 is unknown"),
    (ttrpc_msg(0, 1, b""), "stream id 0"),
])
async def test_malformed_bytes_raise_protocol_error(data: bytes, needle: str) -> None:
    with pytest.raises(ProtocolError, match=needle):
        await read_message(BytesStream(data))


async def test_limit_is_configurable() -> None:
    with pytest.raises(ProtocolError, match="17 bytes on stream 1 exceeds the limit of 16"):
        await read_message(BytesStream(ttrpc_msg(1, 1, b"x" * 17)), max_message=16)
    msg = await read_message(BytesStream(ttrpc_msg(1, 1, b"x" * 16)), max_message=16)
    assert msg is not None and len(msg.payload) == 16


def test_every_vector_has_a_valid_header() -> None:
    files = sorted(Path(VECTORS).glob("[0-9]*.bin"))
    assert len(files) == 20
    for path in files:
        raw = path.read_bytes()
        length, stream_id, mtype, flags = decode_header(raw[:10])
        assert length == len(raw) - 10
        assert stream_id % 2 == 1 and flags == 0
        assert mtype == (1 if "request" in path.name else 2)
