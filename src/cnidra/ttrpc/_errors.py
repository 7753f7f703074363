"""Status codes (gRPC's numbering, which ttrpc uses) and the status error."""

from __future__ import annotations

from enum import IntEnum

from cnidra.errors import CnidraError


class Code(IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


def code_name(code: int) -> str:
    try:
        return Code(code).name
    except ValueError:
        return f"CODE_{code}"


class TTRPCError(CnidraError):
    """A call ended with a non-OK status: the peer's error reply, or a local deadline
    (``DEADLINE_EXCEEDED``), a closed connection (``UNAVAILABLE``) or an oversize message
    (``RESOURCE_EXHAUSTED``). Raised by handlers, it becomes the reply's status."""

    def __init__(self, code: int, message: str) -> None:
        self.code = int(code)
        self.message = message
        super().__init__(f"ttrpc {code_name(self.code)} ({self.code}): {message}")
        self.retryable = self.code in {Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED}
