"""A small general asyncio ttrpc client/server and NRI's connection multiplexer.

Knows nothing of NRI. Unary calls only (ttrpc's streaming ``Data`` messages are ignored).

* ``Client(stream)`` calls methods (odd stream ids, concurrent calls, per-call timeout sent as
  ``timeout_nano``); a non-OK reply raises ``TTRPCError(code, message)``.
* ``Server()`` serves handlers registered by service and method, concurrently, each under the
  caller's deadline; unknown methods get ``UNIMPLEMENTED``.
* ``Mux(reader, writer)`` splits one socket into logical byte-stream connections
  (``MuxConn``), as NRI does; ``SocketStream`` wraps a plain socket for ttrpc without the mux.

Limits: one message is at most 4 MiB (configurable); malformed or truncated bytes raise
``cnidra.errors.ProtocolError`` and close the connection, never the process.
"""

from cnidra.ttrpc._client import Client
from cnidra.ttrpc._errors import Code, TTRPCError
from cnidra.ttrpc._mux import MAX_FRAME, Mux, MuxConn
from cnidra.ttrpc._server import Call, Handler, Server
from cnidra.ttrpc._wire import (
    HEADER_SIZE,
    MAX_MESSAGE,
    ByteStream,
    Message,
    MessageType,
    SocketStream,
    decode_header,
    encode,
    read_message,
)

__all__ = [
    "HEADER_SIZE",
    "MAX_FRAME",
    "MAX_MESSAGE",
    "ByteStream",
    "Call",
    "Client",
    "Code",
    "Handler",
    "Message",
    "MessageType",
    "Mux",
    "MuxConn",
    "Server",
    "SocketStream",
    "TTRPCError",
    "decode_header",
    "encode",
    "read_message",
]
