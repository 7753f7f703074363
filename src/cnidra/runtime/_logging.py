"""Process logging: plain text or JSON lines, with claim and pod identifiers attached.

Identifiers come from two places, merged (the record wins): the ``log_fields(...)`` context
(a contextvar, so it follows a kubelet call or an NRI hook into every task it spawns) and a
record's ``extra={...}``. Known keys: ``claim`` (namespace/name), ``claim_uid``, ``claims``
(several, comma separated), ``pod`` (namespace/name), ``pod_uid``, ``sandbox``, ``event``,
``call``.

JSON: one object per line with ``time`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``,
``message``, the identifiers present, and ``exception`` (the formatted traceback) when there is
one. Text: ``time level logger: message key=value …``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
import types
from collections.abc import Iterator, Mapping
from typing import IO

from cnidra.errors import ConfigError

FIELDS = ("claim", "claim_uid", "claims", "pod", "pod_uid", "sandbox", "event", "call")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}

_EMPTY: Mapping[str, str] = types.MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "cnidra_log_fields", default=_EMPTY
)


@contextlib.contextmanager
def log_fields(**fields: str) -> Iterator[None]:
    """Attach identifiers to every record logged in this context (empty values are dropped)."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current_fields() -> Mapping[str, str]:
    return _context.get()


def _identifiers(record: logging.LogRecord) -> dict[str, str]:
    out = dict(_context.get())
    for key in FIELDS:
        value = record.__dict__.get(key)
        if value:
            out[key] = str(value)
    return {k: out[k] for k in FIELDS if k in out}


def _timestamp(record: logging.LogRecord) -> str:
    when = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JSONFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, str] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_identifiers(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value …`` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={v}" for k, v in _identifiers(record).items())
        line = (f"{_timestamp(record)} {record.levelname.lower():<7} {record.name}: "
                f"{record.getMessage()}{' ' + ids if ids else ''}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def level_number(level: str) -> int:
    try:
        return LEVELS[level.lower()]
    except KeyError:
        raise ConfigError(f"{level!r} is not one of {', '.join(LEVELS)}", "log-level") from None


def setup_logging(level: str = "info", fmt: str = "text", stream: IO[str] | None = None
                  ) -> logging.Handler:
    """Replace the root logger's handlers with one writing ``fmt`` to ``stream`` (stderr)."""
    if fmt not in ("text", "json"):
        raise ConfigError("must be 'text' or 'json'", "log-format")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_number(level))
    for noisy in ("aiohttp.access", "asyncio", "grpc", "httpcore", "httpcore2", "httpx",
                  "httpx2", "pyroute2"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
