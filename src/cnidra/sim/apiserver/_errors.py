"""Kubernetes ``Status`` error bodies, shaped like kube-apiserver v1.36 (misc/generic-errors.json).

Every error is raised as a ``cnidra.errors`` exception whose ``body`` is the exact Status the
HTTP layer returns, so in-process callers and HTTP clients see the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cnidra.errors import ConflictError, KubeAPIError, NotFoundError


@dataclass(frozen=True)
class FieldError:
    """One cause of a 422: ``field`` path, ``reason`` (FieldValueInvalid...), ``message``."""

    field: str
    reason: str
    message: str

    def cause(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def go_value(value: Any) -> str:
    """Render a value the way the API server's field errors print it (%q for strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def invalid(field: str, value: Any, detail: str, *, raw: bool = False) -> FieldError:
    shown = value if raw else go_value(value)
    return FieldError(field, "FieldValueInvalid", f"Invalid value: {shown}: {detail}")


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(
        field, "FieldValueRequired", f"Required value: {detail}" if detail else "Required value"
    )


def too_many(field: str, actual: int, limit: int) -> FieldError:
    return FieldError(
        field, "FieldValueTooMany", f"Too many: {actual}: must have at most {limit} items"
    )


def too_long(field: str, limit: int) -> FieldError:
    return FieldError(field, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")


def duplicate(field: str, value: Any, *, raw: bool = False) -> FieldError:
    shown = value if raw else go_value(value)
    return FieldError(field, "FieldValueDuplicate", f"Duplicate value: {shown}")


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    listed = ", ".join(go_value(s) for s in supported)
    return FieldError(
        field,
        "FieldValueNotSupported",
        f"Unsupported value: {go_value(value)}: supported values: {listed}",
    )


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, "FieldValueForbidden", f"Forbidden: {detail}")


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def status_error(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> KubeAPIError:
    """A KubeAPIError (NotFoundError/ConflictError for 404/409) carrying a Status body."""
    body = _status(code, reason, message, details)
    if code == 404:
        return NotFoundError(message, code, reason, body)
    if code == 409:
        return ConflictError(message, code, reason, body)
    return KubeAPIError(message, code, reason, body)


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> KubeAPIError:
    return status_error(
        404, "NotFound", f'{_qualified(plural, group)} "{name}" not found',
        {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural},
    )


def already_exists(plural: str, group: str, name: str) -> KubeAPIError:
    return status_error(
        409, "AlreadyExists", f'{_qualified(plural, group)} "{name}" already exists',
        {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural},
    )


def stale(plural: str, group: str, name: str) -> KubeAPIError:
    return status_error(
        409, "Conflict",
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again",
        {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural},
    )


def unprocessable(kind: str, group: str, name: str, errors: list[FieldError]) -> KubeAPIError:
    """422 Invalid with the API server's ``<Kind>.<group> "<name>" is invalid: ...`` message."""
    parts = [f"{e.field}: {e.message}" for e in errors]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified = f"{kind}.{group}" if group else kind
    return status_error(
        422, "Invalid", f'{qualified} "{name}" is invalid: {joined}',
        {"name": name, "group": group, "kind": kind, "causes": [e.cause() for e in errors]},
    )


def bad_request(message: str) -> KubeAPIError:
    return status_error(400, "BadRequest", message)


def unsupported_media_type() -> KubeAPIError:
    return status_error(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})


def internal(message: str) -> KubeAPIError:
    return status_error(500, "InternalError", message, {"causes": [{"message": message}]})


def gone(message: str) -> KubeAPIError:
    return status_error(410, "Expired", message)


def unauthorized() -> KubeAPIError:
    return status_error(401, "Unauthorized", "Unauthorized")


def method_not_allowed() -> KubeAPIError:
    return status_error(
        405, "MethodNotAllowed",
        "the server does not allow this method on the requested resource", {},
    )
