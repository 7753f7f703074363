"""Claim identities and preparation outcomes, as exchanged between the kubelet plugin and the
claim state. Pure data: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ClaimRef:
    """What the kubelet sends for one claim: namespace, name and UID (nothing else)."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class PreparedDevice:
    """One allocated device of our driver, as answered to NodePrepareResources.

    ``request_names`` are base request names (a subrequest ``req/sub`` is cut to ``req``);
    ``share_id`` is set for consumable-capacity allocations and only sent over DRA v1.
    """

    request_names: tuple[str, ...]
    pool_name: str
    device_name: str
    cdi_device_ids: tuple[str, ...] = ()
    share_id: str | None = None


@dataclass(frozen=True, slots=True)
class PrepareOutcome:
    """The answer for one claim: its devices, or a self-explanatory error for the tenant."""

    devices: tuple[PreparedDevice, ...] = field(default_factory=tuple)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error
