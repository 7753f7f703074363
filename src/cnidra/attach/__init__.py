"""Per-pod orchestration of CNI ADD/DEL in pod network namespaces, and claim status reporting.

``Attacher`` runs the pod sandbox hooks (RunPodSandbox → ADD every planned interface, with
rollback; Stop/RemovePodSandbox → DEL from the prepared config and the CNI cache; Synchronize →
detach what no live sandbox owns, and catch up live sandboxes that missed RunPodSandbox while
the driver was down, DELing a killed ADD's leftovers first). It must stay fast: the NRI hook
budget is 2 s, and slow work belongs to Prepare. Status writes and events are handed to sinks
that write off the hook path.
Network namespaces are entered only from dedicated threads (``in_netns``).
"""

from cnidra.attach._attacher import Attacher, AttachError, cni_args
from cnidra.attach._netns import NetnsError, in_netns, netns_exists, run_in_netns_blocking
from cnidra.attach._ports import CNI, EventSink, PreparedState, Sandbox, StatusSink
from cnidra.attach._status import failed_entry, ready_entry

__all__ = [
    "CNI",
    "AttachError",
    "Attacher",
    "EventSink",
    "NetnsError",
    "PreparedState",
    "Sandbox",
    "StatusSink",
    "cni_args",
    "failed_entry",
    "in_netns",
    "netns_exists",
    "ready_entry",
    "run_in_netns_blocking",
]
