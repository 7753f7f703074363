"""The NRI plugin: register with the container runtime, configure, synchronize, and hand the pod
sandbox events (RunPodSandbox, StopPodSandbox, RemovePodSandbox; as the dedicated v0.12 RPCs or
as StateChange) to attach.

``NRIPlugin(handler, socket_path=..., name=..., index=...)`` connects to the runtime's NRI socket
(``/var/run/nri/nri.sock``) over ``cnidra.ttrpc``'s mux and reconnects with capped backoff when
the runtime goes away. ``handler`` is a ``PodHandler`` (``cnidra.attach.Attacher`` is one).

Limits: pod events only (mask 0x7; no container events, no adjustments or updates). The hooks are
thin and bounded by the runtime's request timeout (2 s): slow work belongs to Prepare. ``api``
holds the protobuf messages of the part of NRI's API cnidra speaks (for the runtime stand-in).
"""

from cnidra.nri._plugin import NRIPlugin
from cnidra.nri._pods import (
    DEFAULT_SOCKET,
    NRI_VERSION,
    PLUGIN_SERVICE,
    POD_EVENTS_MASK,
    RUNTIME_SERVICE,
    check_plugin_id,
    event_mask,
    netns_path,
    sandbox_from_pod,
)
from cnidra.nri._ports import OnHook, PodHandler
from cnidra.nri._proto import api_pb2 as api

__all__ = [
    "DEFAULT_SOCKET",
    "NRI_VERSION",
    "PLUGIN_SERVICE",
    "POD_EVENTS_MASK",
    "RUNTIME_SERVICE",
    "NRIPlugin",
    "OnHook",
    "PodHandler",
    "api",
    "check_plugin_id",
    "event_mask",
    "netns_path",
    "sandbox_from_pod",
]
