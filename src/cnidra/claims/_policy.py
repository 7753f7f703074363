"""The node's admin policy, its narrowing by DeviceClass ``CNIPolicy`` configs, and the checks it
imposes on a validated conflist. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cnidra.claims._conflist import ConflistView
from cnidra.errors import ConfigError
from cnidra.model.claim_config import CNIPolicyConfig

DEFAULT_ALLOWED_PLUGIN_TYPES = frozenset({
    "macvlan", "ipvlan", "bridge", "tuning", "host-local", "static", "dhcp", "bandwidth", "sbr",
    "vrf", "portmap", "firewall",
})
# Plugins that attach to a host interface and pick the default-route one when ``master`` is
# omitted: under require_master_is_allocated_device they must name the allocated device.
MASTER_PLUGINS = frozenset({"macvlan", "ipvlan"})

DeviceIfNameResolver = Callable[[str], str | None]
"""Maps an allocated device name to the host interface name backing it (None: unknown)."""


def identity_resolver(device: str) -> str | None:
    """The default resolver: the device name is the interface name."""
    return device


@dataclass(frozen=True, slots=True)
class AdminPolicy:
    """What tenants may ask for on this node.

    * ``allowed_plugin_types``: every ``plugins[i].type`` and ``plugins[i].ipam.type`` must be
      one of these (``host-device`` is left out on purpose: it moves a host interface away).
    * ``require_master_is_allocated_device``: a ``master`` key in any plugin must name the
      interface backing the allocated device, and macvlan/ipvlan must set it.
    * ``reserved_if_names``: pod interface names a claim may not use (the pod's own ``eth0``).
    """

    allowed_plugin_types: frozenset[str] = DEFAULT_ALLOWED_PLUGIN_TYPES
    require_master_is_allocated_device: bool = True
    reserved_if_names: frozenset[str] = frozenset({"lo", "eth0"})

    def narrowed(self, by: CNIPolicyConfig | None) -> AdminPolicy:
        """This policy narrowed by a DeviceClass ``CNIPolicy`` (never widened)."""
        if by is None:
            return self
        allowed = self.allowed_plugin_types
        if by.allowed_plugin_types is not None:
            allowed = allowed & frozenset(by.allowed_plugin_types)
        require = self.require_master_is_allocated_device or bool(
            by.require_master_is_allocated_device
        )
        return AdminPolicy(allowed, require, self.reserved_if_names)


def check_conflist(
    conflist: ConflistView, policy: AdminPolicy, *, device: str, device_if_name: str | None,
    narrowed_by_class: bool,
) -> None:
    """Raise ``ConfigError`` (path relative to the conflist) if it breaks ``policy``."""
    why = " (narrowed by the DeviceClass's CNIPolicy)" if narrowed_by_class else ""
    allowed = ", ".join(sorted(policy.allowed_plugin_types)) or "none"
    for i, plugin in enumerate(conflist.plugins):
        _check_type(plugin.type, f"plugins[{i}].type", policy, allowed, why)
        ipam = plugin.raw.get("ipam")
        if isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
            _check_type(ipam["type"], f"plugins[{i}].ipam.type", policy, allowed, why)
        if not policy.require_master_is_allocated_device:
            continue
        master = plugin.raw.get("master")
        if master is None and plugin.type not in MASTER_PLUGINS:
            continue
        if device_if_name is None:
            raise ConfigError(
                f"the allocated device {device!r} is not a known interface on this node, so "
                "master cannot be checked; wait for the device to reappear or ask the admin",
                f"plugins[{i}].master",
            )
        if master is None:
            raise ConfigError(
                f"is required for {plugin.type} by the node's admin policy: set it to "
                f"{device_if_name!r}, the interface of the allocated device",
                f"plugins[{i}].master",
            )
        if master != device_if_name:
            raise ConfigError(
                f"{master!r} is not the allocated device's interface {device_if_name!r}; the "
                f"node's admin policy{why} only lets a plugin use the device allocated to the "
                "claim", f"plugins[{i}].master",
            )


def _check_type(
    plugin_type: str, path: str, policy: AdminPolicy, allowed: str, why: str
) -> None:
    if plugin_type not in policy.allowed_plugin_types:
        raise ConfigError(
            f"plugin type {plugin_type!r} is not allowed by the node's admin policy{why} "
            f"(allowed: {allowed})", path,
        )


def check_if_name_allowed(if_name: str, policy: AdminPolicy, path: str) -> None:
    """Reserved pod interface names are refused."""
    if if_name in policy.reserved_if_names:
        reserved = ", ".join(sorted(policy.reserved_if_names))
        raise ConfigError(
            f"{if_name!r} is reserved in the pod (reserved: {reserved}); choose another name, "
            "e.g. net1", path,
        )

