"""The client role of a ttrpc connection: unary calls on odd stream ids, run concurrently."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from cnidra.errors import ProtocolError
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


class Client:
    """Calls methods of a ttrpc server over ``stream``.

    Stream ids are odd and increase (1, 3, 5, ...). ``timeout`` (seconds; ``default_timeout``
    when not given) is sent as the request's ``timeout_nano`` and enforced locally
    (``DEADLINE_EXCEEDED``). A non-OK reply
    raises ``TTRPCError``; a closed connection fails pending and later calls with
    ``UNAVAILABLE``; malformed bytes close the stream (``error`` holds the ``ProtocolError``).
    """

    def __init__(self, stream: ByteStream, *, max_message: int = MAX_MESSAGE,
                 default_timeout: float = 30.0) -> None:
        self._stream = stream
        self._default_timeout = default_timeout
        self._max_message = max_message
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[ttrpc_pb2.Response]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.error: ProtocolError | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._read_loop(), name="ttrpc-client-reader")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._finish("client closed")

    async def __aenter__(self) -> Client:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(
        self, service: str, method: str, request: ProtoMessage, response_type: type[M], *,
        timeout: float | None = None, metadata: Iterable[tuple[str, str]] = (),
    ) -> M:
        """Call ``service``/``method`` and decode the reply as ``response_type``."""
        payload = await self.call_raw(service, method, request.SerializeToString(),
                                      timeout=timeout, metadata=metadata)
        try:
            return response_type.FromString(payload)
        except DecodeError as exc:
            raise ProtocolError(
                f"{service}/{method}: reply is not a valid {response_type.DESCRIPTOR.full_name}"
            ) from exc

    async def call_raw(
        self, service: str, method: str, payload: bytes, *, timeout: float | None = None,
        metadata: Iterable[tuple[str, str]] = (),
    ) -> bytes:
        """Like ``call`` with the payloads as bytes."""
        if timeout is None:
            timeout = self._default_timeout
        if self._closed:
            raise TTRPCError(Code.UNAVAILABLE, "ttrpc: connection is closed")
        self.start()
        req = ttrpc_pb2.Request(
            service=service, method=method, payload=payload,
            timeout_nano=max(1, int(timeout * 1e9)),
            metadata=[ttrpc_pb2.KeyValue(key=k, value=v) for k, v in metadata],
        )
        body = req.SerializeToString()
        if len(body) > self._max_message:
            raise TTRPCError(Code.RESOURCE_EXHAUSTED,
                             f"{service}/{method}: request of {len(body)} bytes exceeds the "
                             f"limit of {self._max_message} bytes")
        stream_id = self._next_id
        self._next_id += 2
        future: asyncio.Future[ttrpc_pb2.Response] = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = future
        try:
            async with asyncio.timeout(timeout):
                try:
                    await self._stream.write(encode(stream_id, MessageType.REQUEST, body))
                except OSError as exc:
                    raise TTRPCError(Code.UNAVAILABLE,
                                     f"{service}/{method}: cannot send: {exc}") from exc
                resp = await future
        except TimeoutError:
            raise TTRPCError(Code.DEADLINE_EXCEEDED,
                             f"{service}/{method}: no reply within {timeout:g}s") from None
        finally:
            self._pending.pop(stream_id, None)
        if resp.HasField("status") and resp.status.code != Code.OK:
            raise TTRPCError(resp.status.code, resp.status.message)
        return resp.payload

    async def _read_loop(self) -> None:
        reason = "ttrpc: connection closed by the peer"
        try:
            while True:
                msg = await read_message(self._stream, self._max_message)
                if msg is None:
                    break
                resp = _parse_response(msg)
                future = self._pending.get(msg.stream_id)
                if future is None or future.done():
                    log.debug("dropped a reply for stream %d (no call waits)", msg.stream_id)
                    continue
                future.set_result(resp)
        except ProtocolError as exc:
            self.error = exc
            reason = f"ttrpc: connection closed: {exc}"
            log.warning("closing the ttrpc client connection: %s", exc)
        except OSError as exc:
            reason = f"ttrpc: connection lost: {exc}"
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._stream.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TTRPCError(Code.UNAVAILABLE, reason))
        self._pending.clear()


def _parse_response(msg: Message) -> ttrpc_pb2.Response:
    if msg.type != MessageType.RESPONSE:
        raise ProtocolError(f"ttrpc client got a message of type {msg.type} on stream "
                            f"{msg.stream_id}; only responses are expected")
    try:
        return ttrpc_pb2.Response.FromString(msg.payload)
    except DecodeError as exc:
        raise ProtocolError(
            f"ttrpc response on stream {msg.stream_id} is not a valid Response") from exc
