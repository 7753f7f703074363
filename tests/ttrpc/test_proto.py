"""The generated code is reproducible from ttrpc.proto, and matches the wire facts."""

from __future__ import annotations

from pathlib import Path

import cnidra.ttrpc
from cnidra.ttrpc._proto import generate, ttrpc_pb2


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    written = generate.generate(tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["ttrpc_pb2.py", "ttrpc_pb2.pyi"]
    for path in written:
        assert path.read_bytes() == (generate.HERE / path.name).read_bytes(), path.name


def test_field_numbers_are_the_protocols() -> None:
    fields = {f.name: f.number for f in ttrpc_pb2.Request.DESCRIPTOR.fields}
    assert fields == {"service": 1, "method": 2, "payload": 3, "timeout_nano": 4, "metadata": 5}
    assert {f.name: f.number for f in ttrpc_pb2.Response.DESCRIPTOR.fields} == {
        "status": 1, "payload": 2}
    assert {f.name: f.number for f in ttrpc_pb2.Status.DESCRIPTOR.fields} == {
        "code": 1, "message": 2, "details": 3}
    # status {code 12, message "x"}: the same bytes google.rpc.Status gives
    wire = ttrpc_pb2.Response(status=ttrpc_pb2.Status(code=12, message="x")).SerializeToString()
    assert wire == bytes.fromhex("0a05080c120178")


def test_public_api() -> None:
    assert sorted(cnidra.ttrpc.__all__) == sorted([
        "HEADER_SIZE", "MAX_FRAME", "MAX_MESSAGE", "ByteStream", "Call", "Client", "Code",
        "Handler", "Message", "MessageType", "Mux", "MuxConn", "Server", "SocketStream",
        "TTRPCError", "decode_header", "encode", "read_message"])
    assert cnidra.ttrpc.MAX_FRAME == 10 + 4 * 1024 * 1024
    assert int(cnidra.ttrpc.Code.UNIMPLEMENTED) == 12
