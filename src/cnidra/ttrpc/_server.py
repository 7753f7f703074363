"""The server role of a ttrpc connection: handlers by service and method, run concurrently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from cnidra.errors import CnidraError, ProtocolError
from cnidra.ttrpc._errors import Code, TTRPCError
from cnidra.ttrpc._proto import ttrpc_pb2
from cnidra.ttrpc._wire import (
    MAX_MESSAGE,
    ByteStream,
    Message,
    MessageType,
    encode,
    read_message,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=ProtoMessage)


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler knows about the request besides its message."""

    service: str
    method: str
    stream_id: int
    metadata: tuple[tuple[str, str], ...]
    timeout: float | None  # from the request's timeout_nano; None when the caller set none
    deadline: float | None  # loop.time() by which the caller gives up

    def time_left(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - asyncio.get_running_loop().time()


Handler = Callable[[Any, Call], Awaitable[ProtoMessage]]


class Server:
    """Serves registered ``(service, method)`` handlers on ttrpc connections.

    A handler is ``async (request, call) -> reply``. It runs under the caller's deadline (from
    ``timeout_nano``; ``DEADLINE_EXCEEDED`` when hit). An unknown service or method is answered
    ``UNIMPLEMENTED`` (12), a ``TTRPCError`` with its code, any other exception ``UNKNOWN`` (2)
    with its message; the connection stays up. Malformed bytes end ``serve`` with
    ``ProtocolError`` after closing the stream.
    """

    def __init__(self, *, max_message: int = MAX_MESSAGE) -> None:
        self._max_message = max_message
        self._methods: dict[str, dict[str, tuple[type[ProtoMessage], Handler]]] = {}

    def register(self, service: str, method: str, request_type: type[M],
                 handler: Callable[[M, Call], Awaitable[ProtoMessage]]) -> None:
        self._methods.setdefault(service, {})[method] = (request_type, handler)

    async def serve(self, stream: ByteStream) -> None:
        """Serve one connection until the peer closes it (returns) or sends malformed bytes
        (raises ``ProtocolError``). Handlers still running when it ends are cancelled."""
        tasks: dict[int, asyncio.Task[None]] = {}
        try:
            while True:
                msg = await read_message(stream, self._max_message)
                if msg is None:
                    return
                if msg.type == MessageType.DATA:
                    log.debug("ignored a data message on stream %d (unary only)", msg.stream_id)
                    continue
                req = _parse_request(msg, tasks)
                task = asyncio.create_task(self._handle(stream, msg.stream_id, req),
                                           name=f"ttrpc-{req.method}-{msg.stream_id}")
                tasks[msg.stream_id] = task
                task.add_done_callback(_forget(tasks, msg.stream_id))
        except OSError as exc:
            log.debug("ttrpc connection lost: %s", exc)
        except ProtocolError as exc:
            log.warning("closing the ttrpc server connection: %s", exc)
            raise
        finally:
            stream.close()
            pending = list(tasks.values())
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _handle(self, stream: ByteStream, stream_id: int, req: ttrpc_pb2.Request) -> None:
        status, payload = await self._dispatch(stream_id, req)
        resp = ttrpc_pb2.Response(status=status, payload=payload)
        body = resp.SerializeToString()
        if len(body) > self._max_message:
            resp = ttrpc_pb2.Response(status=ttrpc_pb2.Status(
                code=Code.RESOURCE_EXHAUSTED,
                message=f"reply of {len(body)} bytes exceeds the limit of {self._max_message}"))
            body = resp.SerializeToString()
        try:
            await stream.write(encode(stream_id, MessageType.RESPONSE, body))
        except OSError as exc:
            log.debug("reply to %s on stream %d not sent: %s", req.method, stream_id, exc)

    def _lookup(self, req: ttrpc_pb2.Request) -> tuple[ProtoMessage, Handler]:
        methods = self._methods.get(req.service)
        if methods is None:
            raise TTRPCError(Code.UNIMPLEMENTED, f"service {req.service} not implemented")
        entry = methods.get(req.method)
        if entry is None:
            raise TTRPCError(Code.UNIMPLEMENTED, f"method {req.method} not implemented")
        request_type, handler = entry
        try:
            return request_type.FromString(req.payload), handler
        except DecodeError:
            raise TTRPCError(Code.INVALID_ARGUMENT, f"{req.method}: payload is not a valid "
                             f"{request_type.DESCRIPTOR.full_name}") from None

    async def _dispatch(self, stream_id: int, req: ttrpc_pb2.Request
                        ) -> tuple[ttrpc_pb2.Status, bytes]:
        try:
            message, handler = self._lookup(req)
        except TTRPCError as exc:
            return _status(exc.code, exc.message), b""
        timeout = req.timeout_nano / 1e9 if req.timeout_nano > 0 else None
        loop = asyncio.get_running_loop()
        call = Call(req.service, req.method, stream_id,
                    tuple((kv.key, kv.value) for kv in req.metadata), timeout,
                    loop.time() + timeout if timeout is not None else None)
        try:
            async with asyncio.timeout(timeout):
                reply = await handler(message, call)
        except TTRPCError as exc:
            return _status(exc.code, exc.message), b""
        except TimeoutError:
            return _status(Code.DEADLINE_EXCEEDED,
                           f"{req.method}: handler did not finish within {timeout:g}s"), b""
        except CnidraError as exc:
            return _status(Code.UNKNOWN, str(exc)), b""
        except Exception as exc:
            log.exception("ttrpc handler %s/%s failed", req.service, req.method)
            return _status(Code.UNKNOWN, f"{type(exc).__name__}: {exc}"), b""
        return ttrpc_pb2.Status(), reply.SerializeToString()


def _parse_request(msg: Message, tasks: dict[int, asyncio.Task[None]]) -> ttrpc_pb2.Request:
    if msg.type != MessageType.REQUEST:
        raise ProtocolError(f"ttrpc server got a message of type {msg.type} on stream "
                            f"{msg.stream_id}; only requests are expected")
    if msg.stream_id in tasks:
        raise ProtocolError(f"ttrpc stream id {msg.stream_id} is already in use")
    try:
        return ttrpc_pb2.Request.FromString(msg.payload)
    except DecodeError as exc:
        raise ProtocolError(
            f"ttrpc request on stream {msg.stream_id} is not a valid Request") from exc


def _forget(tasks: dict[int, asyncio.Task[None]], stream_id: int
            ) -> Callable[[asyncio.Task[None]], None]:
    def done(_: asyncio.Task[None]) -> None:
        tasks.pop(stream_id, None)
    return done


def _status(code: int, message: str) -> ttrpc_pb2.Status:
    return ttrpc_pb2.Status(code=code, message=message)
