"""What a plugin is given: the attachment (``RuntimeConf``) and each plugin's stdin. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnidra.cni._config import NAME_RE, NetworkConfigList, PluginConf
from cnidra.cni._results import Result
from cnidra.errors import ConfigError

ATTACHMENT_VERBS = frozenset({"ADD", "DEL", "CHECK"})


@dataclass(frozen=True)
class RuntimeConf:
    """One attachment: container, netns path, interface name, CNI_ARGS and capability args.

    ``args`` become ``CNI_ARGS`` in order (``IgnoreUnknown=1;K8S_POD_NAMESPACE=…``).
    ``netns`` may be empty on DEL when the namespace is already gone (as containerd does).
    """

    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """libcni's checks: container ID and interface name are safe path parts."""
        if not NAME_RE.fullmatch(self.container_id):
            raise ConfigError(
                f"{self.container_id!r} must start with a letter or digit and contain only "
                "letters, digits, '_', '.', '-'", "containerID",
            )
        name = self.ifname
        if not name or len(name.encode()) > 15 or name in {".", ".."} or any(
            c in "/:\x00" or c.isspace() for c in name
        ):
            raise ConfigError(
                f"{name!r} is not a valid interface name (1-15 bytes, no '/', ':' or blanks)",
                "ifName",
            )
        for i, (key, value) in enumerate(self.args):
            if not key or any(c in key + value for c in ";="):
                raise ConfigError(f"{key}={value} may not contain ';' or '='", f"args[{i}]")


def plugin_stdin(
    net: NetworkConfigList, plugin: PluginConf, version: str, verb: str, *,
    rt: RuntimeConf | None = None, prev: Result | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """The plugin's config with ``name``/``cniVersion`` injected (libcni ``buildOneConfig``).

    ``runtimeConfig`` = declared capabilities ∩ supplied capability args (ADD/DEL/CHECK);
    ``prevResult`` is ``prev`` in ``version``'s format; ``extra`` adds keys (GC attachments).
    """
    conf = dict(plugin.raw)
    conf["name"] = net.name
    conf["cniVersion"] = version
    if rt is not None and verb in ATTACHMENT_VERBS:
        runtime_config = {
            cap: rt.capability_args[cap] for cap in sorted(plugin.capabilities)
            if cap in rt.capability_args
        }
        if runtime_config:
            conf["runtimeConfig"] = runtime_config
    if prev is not None:
        conf["prevResult"] = prev.to_dict(version)
    if extra:
        conf.update(extra)
    return json.dumps(conf, separators=(",", ":")).encode()
