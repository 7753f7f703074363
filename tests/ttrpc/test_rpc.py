"""Client and server roles: over a real socket pair and against hand-built bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from ttrpc.wirekit import BytesStream, request, socket_pair, split_messages, ttrpc_msg

from cnidra.errors import ConfigError, ProtocolError
from cnidra.ttrpc import Call, Client, Code, Mux, Server, SocketStream, TTRPCError, read_message
from cnidra.ttrpc._proto import ttrpc_pb2

KV = ttrpc_pb2.KeyValue
SVC = "test.Echo"


@dataclass
class Pair:
    client: Client
    server: Server
    calls: list[Call]
    serving: asyncio.Task[None]


def echo_server(calls: list[Call]) -> Server:
    server = Server()

    async def echo(req: KV, call: Call) -> KV:
        calls.append(call)
        await asyncio.sleep(float(req.value or 0))
        return KV(key=req.key.upper(), value=req.value)

    async def fail(req: KV, call: Call) -> KV:
        if req.key == "status":
            raise TTRPCError(Code.NOT_FOUND, "no such thing")
        if req.key == "cnidra":
            raise ConfigError("bad value", "spec.ifName")
        raise RuntimeError("boom")

    async def slow(req: KV, call: Call) -> KV:
        await asyncio.sleep(10)
        return KV()

    server.register(SVC, "Echo", KV, echo)
    server.register(SVC, "Fail", KV, fail)
    server.register(SVC, "Slow", KV, slow)
    return server


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    (r1, w1), (r2, w2) = await socket_pair()
    calls: list[Call] = []
    server = echo_server(calls)
    serving = asyncio.create_task(server.serve(SocketStream(r2, w2)))
    client = Client(SocketStream(r1, w1))
    yield Pair(client, server, calls, serving)
    await client.close()
    async with asyncio.timeout(5):
        await serving


async def test_concurrent_calls_complete_out_of_order(pair: Pair) -> None:
    async with asyncio.timeout(5):
        slow = asyncio.create_task(pair.client.call(SVC, "Echo", KV(key="a", value="0.2"), KV))
        fast = await pair.client.call(SVC, "Echo", KV(key="b", value="0"), KV,
                                      timeout=3, metadata=[("ns", "k8s.io")])
        assert fast == KV(key="B", value="0")
        assert not slow.done()
        assert (await slow).key == "A"
    first, second = sorted(pair.calls, key=lambda c: c.metadata)  # a (no metadata), b
    assert {first.stream_id, second.stream_id} == {1, 3}
    assert first.timeout == pytest.approx(30.0) and first.metadata == ()  # the default
    assert second.metadata == (("ns", "k8s.io"),)
    assert second.timeout is not None and 2.9 < second.timeout <= 3.0


async def test_errors_come_back_as_status(pair: Pair) -> None:
    cases = [("Nope", "x", Code.UNIMPLEMENTED, "method Nope not implemented"),
             ("Fail", "status", Code.NOT_FOUND, "no such thing"),
             ("Fail", "cnidra", Code.UNKNOWN, "spec.ifName: bad value"),
             ("Fail", "other", Code.UNKNOWN, "RuntimeError: boom")]
    for method, key, code, message in cases:
        with pytest.raises(TTRPCError) as exc:
            await pair.client.call(SVC, method, KV(key=key), KV, timeout=5)
        assert (exc.value.code, exc.value.message) == (code, message)
    with pytest.raises(TTRPCError) as exc:
        await pair.client.call("other.Svc", "Echo", KV(), KV, timeout=5)
    assert exc.value.code == 12 and exc.value.message == "service other.Svc not implemented"
    assert (await pair.client.call(SVC, "Echo", KV(key="ok"), KV, timeout=5)).key == "OK"


async def test_client_timeout_is_deadline_exceeded_and_the_connection_lives(pair: Pair) -> None:
    with pytest.raises(TTRPCError) as exc:
        await pair.client.call(SVC, "Echo", KV(key="x", value="1"), KV, timeout=0.05)
    assert exc.value.code == Code.DEADLINE_EXCEEDED
    assert (await pair.client.call(SVC, "Echo", KV(key="y"), KV, timeout=5)).key == "Y"


async def test_oversize_request_is_refused_locally() -> None:
    (r1, w1), (_r2, w2) = await socket_pair()
    client = Client(SocketStream(r1, w1), max_message=64)
    with pytest.raises(TTRPCError) as exc:
        await client.call(SVC, "Echo", KV(key="x" * 100), KV)
    assert exc.value.code == Code.RESOURCE_EXHAUSTED
    await client.close()
    w2.close()


async def test_pending_calls_fail_when_the_peer_closes() -> None:
    (r1, w1), (r2, w2) = await socket_pair()
    async with Client(SocketStream(r1, w1)) as client:
        call = asyncio.create_task(client.call(SVC, "Echo", KV(), KV, timeout=5))
        async with asyncio.timeout(5):
            assert (await r2.readexactly(10))[8] == 1
            w2.close()
            with pytest.raises(TTRPCError) as exc:
                await call
        assert exc.value.code == Code.UNAVAILABLE
        assert client.closed
        with pytest.raises(TTRPCError):
            await client.call(SVC, "Echo", KV(), KV)


async def test_client_sends_odd_stream_ids_and_closes_on_a_malformed_reply() -> None:
    (r1, w1), (r2, w2) = await socket_pair()
    client = Client(SocketStream(r1, w1))
    calls = [asyncio.create_task(client.call(SVC, "Echo", KV(key=str(i)), KV, timeout=5))
             for i in range(3)]
    async with asyncio.timeout(5):
        sent = []
        for _ in range(3):
            msg = await read_message(SocketStream(r2, w2))
            assert msg is not None
            sent.append((msg.stream_id, msg.type, msg.flags, msg.payload))
        assert [(sid, t) for sid, t, _, _ in sent] == [(1, 1), (3, 1), (5, 1)]
        req = ttrpc_pb2.Request.FromString(sent[0][3])
        assert (req.service, req.method, req.timeout_nano > 4e9) == (SVC, "Echo", True)
        # a good reply for 3 (status left out, as the runtime does), then garbage for 1
        w2.write(ttrpc_msg(3, 2, ttrpc_pb2.Response(payload=KV(key="x").SerializeToString())
                           .SerializeToString()))
        w2.write(ttrpc_msg(1, 2, b"\xff\xff\xff"))
        await w2.drain()
        assert (await calls[1]) == KV(key="x")
        for task in (calls[0], calls[2]):
            with pytest.raises(TTRPCError) as exc:
                await task
            assert exc.value.code == Code.UNAVAILABLE
            assert "not a valid Response" in exc.value.message
        assert await r2.read() == b""
    assert isinstance(client.error, ProtocolError)
    await client.close()
    w2.close()


async def test_server_answers_hand_built_requests() -> None:
    calls: list[Call] = []
    data = (ttrpc_msg(1, 1, request(SVC, "Echo", KV(key="hi").SerializeToString(),
                                    timeout_nano=1_999_930_317, metadata=[("a", "b")]))
            + ttrpc_msg(3, 1, request(SVC, "Nope"))
            + ttrpc_msg(5, 3, b"stream data is ignored")
            + ttrpc_msg(7, 1, request(SVC, "Echo", b"\x0a\x05ab")))  # truncated KeyValue
    stream = BytesStream(data, eof=False)
    serving = asyncio.create_task(echo_server(calls).serve(stream))
    async with asyncio.timeout(5):
        while len(split_messages(bytes(stream.written))) < 3:
            await asyncio.sleep(0.01)
        stream.reader.feed_eof()
        await serving
    replies = {sid: (t, ttrpc_pb2.Response.FromString(p))
               for sid, t, _, p in split_messages(bytes(stream.written))}
    assert set(replies) == {1, 3, 7}
    ok = replies[1][1]
    assert replies[1][0] == 2 and ok.status.code == 0
    assert KV.FromString(ok.payload) == KV(key="HI")
    assert replies[3][1].status.code == 12
    assert replies[7][1].status.code == Code.INVALID_ARGUMENT
    assert calls[0].timeout == pytest.approx(1.999930317)
    assert calls[0].metadata == (("a", "b"),)
    assert stream.closed


@pytest.mark.parametrize(("data", "needle"), [
    (ttrpc_msg(1, 1, b"\x0a\x10short"), "not a valid Request"),
    (ttrpc_msg(1, 2, b""), "only requests are expected"),
    (ttrpc_msg(1, 1, request(SVC, "Slow")) + ttrpc_msg(1, 1, request(SVC, "Slow")),
     "stream id 1 is already in use"),
    (ttrpc_msg(1, 1, request(SVC, "Echo"))[:-1], "truncated ttrpc message"),
])
async def test_server_closes_on_malformed_bytes(data: bytes, needle: str) -> None:
    stream = BytesStream(data)
    with pytest.raises(ProtocolError, match=needle):
        async with asyncio.timeout(5):
            await echo_server([]).serve(stream)
    assert stream.closed


async def test_handler_deadline_from_timeout_nano() -> None:
    data = ttrpc_msg(1, 1, request(SVC, "Slow", timeout_nano=50_000_000))
    stream = BytesStream(data, eof=False)
    serving = asyncio.create_task(echo_server([]).serve(stream))
    async with asyncio.timeout(5):
        while not stream.written:
            await asyncio.sleep(0.01)
        stream.reader.feed_eof()
        await serving
    (_, _, _, payload), = split_messages(bytes(stream.written))
    status = ttrpc_pb2.Response.FromString(payload).status
    assert status.code == Code.DEADLINE_EXCEEDED
    assert "within 0.05s" in status.message


async def test_rpc_over_the_mux_in_both_directions() -> None:
    (r1, w1), (r2, w2) = await socket_pair()
    left, right = Mux(r1, w1, max_frame=16), Mux(r2, w2, max_frame=16)
    calls: list[Call] = []
    server = echo_server(calls)
    # conn 1: right serves, left calls; conn 2: left serves, right calls (as in NRI)
    serve_r = asyncio.create_task(server.serve(right.open(1)))
    serve_l = asyncio.create_task(server.serve(left.open(2)))
    client_l, client_r = Client(left.open(1)), Client(right.open(2))
    left.start()
    right.start()
    async with asyncio.timeout(5):
        a, b = await asyncio.gather(
            client_l.call(SVC, "Echo", KV(key="left" * 20), KV, timeout=5),
            client_r.call(SVC, "Echo", KV(key="right" * 20), KV, timeout=5))
    assert (a.key, b.key) == ("LEFT" * 20, "RIGHT" * 20)
    await left.close()
    async with asyncio.timeout(5):
        await asyncio.gather(serve_l, serve_r)
        await right.wait_closed()
    await client_l.close()
    await client_r.close()
    await right.close()
