"""The embedded node's container runtime, as far as NRI goes: a stand-in for containerd's side
of NRI (v0.12 with the StateChange fallback, or an older StateChange-only runtime).

``NRIRuntime(socket_path)`` listens on a unix socket, accepts one plugin at a time, answers
RegisterPlugin, sends Configure and Synchronize, and sends the pod events of ``SimPod``
sandboxes through ``run_pod_sandbox`` / ``stop_pod_sandbox`` / ``remove_pod_sandbox`` with
containerd's 2 s request timeout (a plugin that misses it is disconnected). It does not create
network namespaces: the sim's fabric does (``Fabric.add_pod``), and the path goes in the pod.
"""

from cnidra.sim.runtime._pods import SimPod
from cnidra.sim.runtime._runtime import Mode, NRIRuntime, PodHookError

__all__ = ["Mode", "NRIRuntime", "PodHookError", "SimPod"]
