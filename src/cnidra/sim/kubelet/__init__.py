"""The kubelet stand-in of the embedded node: the kubelet's side of plugin registration and of
the DRA gRPC services, with the real kubelet 1.36's sequence and deadlines (FACTS.md 2 and 7).

Job: watch the registration directory (polling; dotfiles and non-sockets ignored), call
``GetInfo`` (1 s), pick the first entry of the plugin's list it knows (``v1.DRAPlugin``,
``v1beta1.DRAPlugin``) or reject with the kubelet's own reason and retry with backoff, connect
to the endpoint, then ``NotifyRegistrationStatus`` (5 s); ``prepare``/``unprepare`` one pod's
claims in one call (45 s); consume the health stream (retried every 5 s when the plugin does
not serve it) and keep the latest health per device.

Limits: the newest registration of a driver wins (no choice among several connected plugins);
no 30 s slice wiping and no kubelet checkpoint of prepared claims; only DRA plugins.
"""

from cnidra.sim.kubelet._standin import (
    KNOWN_SERVICES,
    ClaimLike,
    KubeletCallError,
    KubeletStandIn,
    RegisteredPlugin,
)

__all__ = [
    "KNOWN_SERVICES",
    "ClaimLike",
    "KubeletCallError",
    "KubeletStandIn",
    "RegisteredPlugin",
]
