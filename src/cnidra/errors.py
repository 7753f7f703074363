"""The one error tree of cnidra, grouped by how a caller reacts.

::

    CnidraError                      base of everything we raise on purpose
    ├── ConfigError                  bad input: never retried; report it (names the field path)
    ├── CNIError                     a CNI plugin or the CNI runtime failed (code/msg/details kept)
    │   └── CNITimeoutError          the plugin was killed after its exec timeout (retryable)
    ├── KubeAPIError                 the API server answered with an error or could not be reached
    │   ├── NotFoundError            404: the object does not exist
    │   └── ConflictError            409: resourceVersion or field-manager conflict (retryable)
    ├── NRIError                     the NRI/ttrpc peer misbehaved or the protocol was violated
    ├── CheckpointError              the checkpoint cannot be read or written (file is kept)
    └── ProtocolError                malformed bytes from a peer (ttrpc, mux); the connection closes

Foreign errors (OSError, grpc, aiohttp, pydantic, lightkube) are mapped at each boundary with
``raise ... from exc`` so callers only ever catch these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CnidraError(Exception):
    """Base class of every error cnidra raises on purpose."""

    retryable: bool = False


class ConfigError(CnidraError):
    """Bad input (claim config, conflist, settings). Never retried.

    ``path`` is the offending field path (``spec.devices.config[0].opaque.parameters.ifName``),
    empty when the input as a whole is wrong.
    """

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def under(self, prefix: str) -> ConfigError:
        """The same error with its path nested under ``prefix``."""
        if not prefix:
            return self
        joined = f"{prefix}.{self.path}" if self.path and not self.path.startswith("[") else (
            f"{prefix}{self.path}"
        )
        return type(self)(self.message, joined)


class CNIError(CnidraError):
    """A CNI error result (``code``, ``msg``, ``details``) or a runtime failure around a plugin.

    Codes follow the CNI spec (1 incompatible version … 11 try again later, 50/51 not available,
    100+ plugin specific) plus libcni's 8 (invalid netns) and 999 (internal).
    """

    def __init__(
        self, code: int, msg: str, details: str = "", *, plugin: str = "", verb: str = ""
    ) -> None:
        self.code = code
        self.msg = msg
        self.details = details
        self.plugin = plugin
        self.verb = verb
        where = f"{plugin} {verb}: " if plugin or verb else ""
        tail = f" ({details})" if details else ""
        super().__init__(f"{where}{msg}{tail} [CNI code {code}]")
        self.retryable = code == 11

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


class CNITimeoutError(CNIError):
    """The plugin did not finish within its exec timeout and was killed."""

    def __init__(self, plugin: str, verb: str, seconds: float) -> None:
        super().__init__(
            999, f"timed out after {seconds:g}s and was killed", plugin=plugin, verb=verb
        )
        self.retryable = True


class KubeAPIError(CnidraError):
    """An API server error (``status`` is the HTTP code, 0 when unreachable)."""

    def __init__(
        self, message: str, status: int = 0, reason: str = "", body: Mapping[str, Any] | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.body = dict(body or {})
        super().__init__(f"{message} (HTTP {status} {reason})" if status else message)
        self.retryable = status in {0, 429} or status >= 500


class NotFoundError(KubeAPIError):
    """404 from the API server."""


class ConflictError(KubeAPIError):
    """409 from the API server: re-read and retry."""

    retryable = True

    def __init__(
        self, message: str, status: int = 409, reason: str = "Conflict",
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status, reason, body)
        self.retryable = True


class NRIError(CnidraError):
    """The NRI runtime refused us or spoke out of protocol."""


class ProtocolError(CnidraError):
    """Malformed or truncated bytes from a peer; the connection is closed."""


class CheckpointError(CnidraError):
    """The checkpoint cannot be read or written. An unreadable file is kept, never replaced."""


__all__ = [
    "CNIError",
    "CNITimeoutError",
    "CheckpointError",
    "CnidraError",
    "ConfigError",
    "ConflictError",
    "KubeAPIError",
    "NRIError",
    "NotFoundError",
    "ProtocolError",
]
