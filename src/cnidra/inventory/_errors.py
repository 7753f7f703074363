"""The inventory's error: netlink could not be read (mapped from OSError / NetlinkError)."""

from __future__ import annotations

from cnidra.errors import CnidraError


class InventoryError(CnidraError):
    """The interfaces of this node cannot be read (netlink dump or event socket failed).

    Retryable: the watch loop retries with capped backoff and keeps its last good snapshot.
    """

    retryable = True
