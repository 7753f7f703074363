"""``ClaimConfigError``: a ``ConfigError`` that also names the claim it is about."""

from __future__ import annotations

from cnidra.errors import ConfigError


class ClaimConfigError(ConfigError):
    """A bad claim, reported as ``claim <namespace>/<name>: <path>: <message>``.

    ``path`` stays the bare field path (``spec.devices.config[0].opaque.parameters.ifName``);
    ``claim`` is ``namespace/name``. It is a ``ConfigError``: never retried.
    """

    def __init__(self, message: str, path: str = "", *, claim: str = "") -> None:
        super().__init__(message, path)
        self.claim = claim
        if claim:
            self.args = (f"claim {claim}: {self.args[0]}",)

    def under(self, prefix: str) -> ClaimConfigError:
        nested = ConfigError(self.message, self.path).under(prefix)
        return ClaimConfigError(nested.message, nested.path, claim=self.claim)
