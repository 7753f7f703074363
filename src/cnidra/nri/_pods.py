"""NRI wire constants and the pure conversions the plugin needs (no I/O)."""

from __future__ import annotations

import re

from cnidra.attach import Sandbox
from cnidra.errors import ConfigError
from cnidra.nri._proto import api_pb2 as api

DEFAULT_SOCKET = "/var/run/nri/nri.sock"
PLUGIN_SERVICE = "nri.pkg.api.v1alpha1.Plugin"
RUNTIME_SERVICE = "nri.pkg.api.v1alpha1.Runtime"
NRI_VERSION = "v0.12.2"  # the protocol version our wire knowledge comes from (FACTS.md s. 6)

POD_EVENTS = (api.RUN_POD_SANDBOX, api.STOP_POD_SANDBOX, api.REMOVE_POD_SANDBOX)
_NAME_RE = re.compile(r"[A-Za-z0-9_.+-]+")
_INDEX_RE = re.compile(r"[0-9]{2}")


def event_mask(*events: int) -> int:
    """The subscription bit mask of ``events`` (bit ``1 << (event - 1)``); never 0, which
    would mean "everything" to the runtime."""
    if not events:
        raise ValueError("an event mask needs at least one event (0 means every event)")
    mask = 0
    for event in events:
        if not api.UNKNOWN < event < api.LAST:
            raise ValueError(f"event {event} is not an NRI event")
        mask |= 1 << (event - 1)
    return mask


POD_EVENTS_MASK = event_mask(*POD_EVENTS)  # 0x7


def check_plugin_id(name: str, index: str) -> None:
    """The runtime's own rules: index exactly two digits, name ``[A-Za-z0-9_.+-]+``."""
    if not _INDEX_RE.fullmatch(index):
        raise ConfigError(f"must be exactly two digits, got {index!r}", "nri.index")
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"may only contain letters, digits and _.+- , got {name!r}",
                          "nri.name")


def netns_path(pod: api.PodSandbox) -> str | None:
    """The path of the pod's ``network`` namespace entry; None when there is none (host
    network, or RemovePodSandbox, where the runtime leaves the entry out) or it is empty."""
    for ns in pod.linux.namespaces:
        if ns.type == "network" and ns.path:
            return ns.path
    return None


def sandbox_from_pod(pod: api.PodSandbox) -> Sandbox:
    """The attach view of a pod; ``ConfigError`` naming the field when id or uid is missing."""
    if not pod.id:
        raise ConfigError("is empty", "pod.id")
    if not pod.uid:
        raise ConfigError("is empty", "pod.uid")
    return Sandbox(id=pod.id, pod_uid=pod.uid, pod_name=pod.name, pod_namespace=pod.namespace,
                   netns=netns_path(pod))


def live_sandbox(pod: api.PodSandbox) -> Sandbox | None:
    """A Synchronize entry as a ``Sandbox``; None without an id. A missing uid stays empty
    (the sandbox still counts as live, so nothing of it is detached, but nothing is attached)."""
    if not pod.id:
        return None
    return Sandbox(id=pod.id, pod_uid=pod.uid, pod_name=pod.name, pod_namespace=pod.namespace,
                   netns=netns_path(pod))
