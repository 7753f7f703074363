"""Attach plans and attachment records: what Prepare decided and what attach did. Pure data.

A :class:`ClaimPlan` is computed once per claim allocation (``cnidra.claims.compute_plan``) and
kept in the checkpoint; attach runs one CNI ADD per :class:`PlannedInterface` of every plan of a
pod and records an :class:`Attachment` per interface and sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cnidra.model.claims import PreparedDevice

ConfigSource = Literal["FromClass", "FromClaim"]


@dataclass(frozen=True, slots=True)
class PlannedInterface:
    """One pod interface: an allocated device of our driver and the CNI network that creates it.

    ``conflist`` is the network configuration list as canonical JSON (sorted keys, no spaces),
    exactly as it will be given to the CNI runtime. ``config_source``/``if_name_source`` say
    whether the DeviceClass or the claim supplied ``config`` and ``ifName``. ``device_if_name``
    is the host interface backing the device (the device name may be a sanitized DNS label).
    """

    claim_uid: str
    claim_namespace: str
    claim_name: str
    request: str
    driver: str
    pool: str
    device: str
    device_if_name: str
    share_id: str | None
    admin_access: bool
    if_name: str
    network_name: str
    cni_version: str
    conflist: bytes
    config_source: ConfigSource
    if_name_source: ConfigSource

    @property
    def base_request(self) -> str:
        """The request name without a subrequest (``req/sub`` → ``req``)."""
        return self.request.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """Everything Prepare decided for one claim allocation.

    ``allocation_digest`` identifies the allocation the plan was computed from (a SHA-256 of
    ``status.allocation`` as canonical JSON), so a repeated Prepare of the same allocation reuses
    the plan. ``pod_uids`` come from ``status.reservedFor`` entries with ``resource: pods``.
    """

    claim_uid: str
    namespace: str
    name: str
    allocation_digest: str
    pod_uids: tuple[str, ...]
    interfaces: tuple[PlannedInterface, ...]
    devices: tuple[PreparedDevice, ...]

    @property
    def key(self) -> str:
        """``namespace/name``, the way users name the claim."""
        return f"{self.namespace}/{self.name}"

    @property
    def if_names(self) -> tuple[str, ...]:
        """The pod interface names this claim creates (unique within the claim)."""
        return tuple(i.if_name for i in self.interfaces)

    def interface(self, if_name: str) -> PlannedInterface | None:
        """The planned interface named ``if_name``, if any."""
        return next((i for i in self.interfaces if i.if_name == if_name), None)


@dataclass(frozen=True, slots=True)
class Attachment:
    """One interface of one claim, added by CNI to one pod sandbox.

    ``cni_result`` is the plugin's result object (kept for DEL's ``prevResult`` and for the claim
    status); treat it as read-only. ``since`` is the wall-clock time of the ADD (Unix seconds).
    ``status_reported`` turns true once ``status.devices`` was written for it.
    """

    claim_uid: str
    if_name: str
    pod_uid: str
    sandbox_id: str
    netns: str
    network_name: str
    cni_result: Mapping[str, Any] = field(default_factory=dict)
    since: float = 0.0
    status_reported: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity within the checkpoint: (claim UID, pod interface name, sandbox ID)."""
        return (self.claim_uid, self.if_name, self.sandbox_id)


__all__ = ["Attachment", "ClaimPlan", "ConfigSource", "PlannedInterface"]
