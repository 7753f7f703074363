"""The driver's settings: one frozen object, filled from flags, then environment, then defaults.

Every flag ``--foo-bar`` has an environment variable ``CNIDRA_FOO_BAR`` (the Helm chart sets
those); a flag given on the command line wins over the environment.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from cnidra.errors import ConfigError

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

DEFAULT_DRIVER = "cni.dra.networking.x-k8s.io"
DEFAULT_ALLOWED_PLUGINS = (
    "macvlan", "ipvlan", "bridge", "tuning", "host-local", "static", "dhcp", "bandwidth",
    "sbr", "vrf", "portmap", "firewall",
)


@dataclass(frozen=True)
class Settings:
    driver_name: str = DEFAULT_DRIVER
    node_name: str = ""
    kubeconfig: str = ""  # empty: in-cluster config
    # kubelet plugin
    kubelet_registry_dir: str = "/var/lib/kubelet/plugins_registry"
    kubelet_plugin_dir: str = ""  # default: /var/lib/kubelet/plugins/<driver>
    rolling_update_pod_uid: str = ""
    # NRI
    nri_socket: str = "/var/run/nri/nri.sock"
    nri_plugin_name: str = "cnidra"
    nri_plugin_index: str = "50"
    # CNI
    cni_bin_dirs: tuple[str, ...] = ("/opt/cni/bin", "/usr/lib/cni")
    cni_cache_dir: str = ""  # default: <state dir>/cni (never the primary network's cache)
    cni_exec_timeout: float = 10.0
    # state
    state_dir: str = "/var/lib/cnidra"
    # policy and inventory
    allowed_plugins: tuple[str, ...] = DEFAULT_ALLOWED_PLUGINS
    require_master_is_allocated: bool = True
    device_filter: str = ""  # CEL over the published device; empty: publish everything
    include_default_route_uplink: bool = False
    inventory_poll_seconds: float = 60.0
    # observability
    log_level: str = "info"
    log_format: str = "text"
    metrics_address: str = ":9177"
    # shutdown
    shutdown_timeout: float = 10.0
    cleanup_on_exit: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def plugin_dir(self) -> str:
        return self.kubelet_plugin_dir or f"/var/lib/kubelet/plugins/{self.driver_name}"

    @property
    def cache_dir(self) -> str:
        return self.cni_cache_dir or str(Path(self.state_dir) / "cni")

    def metrics_host_port(self) -> tuple[str, int]:
        host, _, port = self.metrics_address.rpartition(":")
        try:
            number = int(port)
        except ValueError:
            raise ConfigError(
                f"{self.metrics_address!r} is not HOST:PORT", "metrics-address"
            ) from None
        return host or "0.0.0.0", number  # noqa: S104 - metrics are scraped from the pod IP

    def validate(self) -> Settings:
        if not self.node_name:
            raise ConfigError("the node name is required (set --node-name or NODE_NAME)",
                              "node-name")
        if len(self.nri_plugin_index) != 2 or not self.nri_plugin_index.isdigit():
            raise ConfigError("must be exactly two digits", "nri-plugin-index")
        if self.log_format not in ("text", "json"):
            raise ConfigError("must be 'text' or 'json'", "log-format")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"{self.log_level!r} is not one of debug, info, warning, error",
                              "log-level")
        if not _DNS_SUBDOMAIN.match(self.driver_name) or len(self.driver_name) > 63:
            raise ConfigError("must be a DNS subdomain of at most 63 characters", "driver-name")
        if not self.cni_bin_dirs:
            raise ConfigError("at least one directory is required", "cni-bin-dirs")
        for name in ("cni_exec_timeout", "inventory_poll_seconds", "shutdown_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError("must be positive", name.replace("_", "-"))
        self.metrics_host_port()
        return self


_HELP = {
    "driver_name": "DRA driver name (the ResourceSlice/claim driver field)",
    "node_name": "this node's name (env NODE_NAME also works, from the downward API)",
    "kubeconfig": "kubeconfig path; empty means in-cluster configuration",
    "kubelet_registry_dir": "kubelet plugin registration directory",
    "kubelet_plugin_dir": "directory of the DRA socket (default /var/lib/kubelet/plugins/<driver>)",
    "rolling_update_pod_uid": "this pod's UID: enables rolling-update socket names (kubelet>=1.33)",
    "nri_socket": "containerd NRI socket",
    "nri_plugin_name": "NRI plugin name",
    "nri_plugin_index": "NRI plugin index (two digits)",
    "cni_bin_dirs": "CNI plugin directories, searched in order (comma separated)",
    "cni_cache_dir": "CNI result cache (default <state dir>/cni)",
    "cni_exec_timeout": "seconds before a CNI plugin exec is killed",
    "state_dir": "driver state (checkpoint, CNI cache)",
    "allowed_plugins": "CNI plugin types tenants may use (comma separated)",
    "require_master_is_allocated": "a plugin's 'master' must be the allocated device",
    "device_filter": "CEL expression selecting which interfaces to publish",
    "include_default_route_uplink": "also publish the node's default-route uplink",
    "inventory_poll_seconds": "maximum seconds between interface scans",
    "log_level": "debug, info, warning or error",
    "log_format": "text or json",
    "metrics_address": "HOST:PORT for /healthz, /readyz and /metrics",
    "shutdown_timeout": "seconds each shutdown step may take (NRI hook drain, status drain, "
                        "kubelet plugin grace)",
    "cleanup_on_exit": "delete this node's ResourceSlices on exit (uninstall); by default they "
                       "stay and the kubelet wipes them 30 s after the plugin is gone",
}


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value) if value != "" else "none"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; the help names its environment variable and default.

    Boolean flags take an optional value: ``--cleanup-on-exit`` means true,
    ``--cleanup-on-exit=false`` false.
    """
    base = Settings()
    for f in fields(Settings):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(base, f.name)
        env = "CNIDRA_" + f.name.upper() + (" or NODE_NAME" if f.name == "node_name" else "")
        text = f"{_HELP[f.name]} [env {env}; default: {_shown(default)}]"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, default=None, nargs="?", const="true",
                                metavar="BOOL", help=text.replace("%", "%%"))
        else:
            metavar = ("SECONDS" if isinstance(default, float) else
                       "LIST" if isinstance(default, tuple) else f.name.split("_")[-1].upper())
            parser.add_argument(flag, dest=f.name, default=None, metavar=metavar,
                                help=text.replace("%", "%%"))


def _convert(name: str, raw: str, default: object) -> object:
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{raw!r} is not a boolean", name.replace("_", "-"))
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{raw!r} is not a number", name.replace("_", "-")) from None
    if isinstance(default, tuple):
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    return raw


def from_sources(
    args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Flags win over ``CNIDRA_*`` environment variables, which win over defaults."""
    env = os.environ if environ is None else environ
    base = Settings()
    values: dict[str, object] = {}
    for f in fields(Settings):
        if f.name == "extra":
            continue
        raw = getattr(args, f.name, None) if args is not None else None
        if raw is None:
            raw = env.get("CNIDRA_" + f.name.upper())
        if raw is None and f.name == "node_name":
            raw = env.get("NODE_NAME")
        if raw is not None:
            values[f.name] = _convert(f.name, str(raw), getattr(base, f.name))
    return Settings(**values)  # type: ignore[arg-type]


def describe(settings: Settings) -> Sequence[tuple[str, str]]:
    """Name/value pairs for the start-up log line."""
    return [(f.name, str(getattr(settings, f.name))) for f in fields(settings) if f.name != "extra"]
