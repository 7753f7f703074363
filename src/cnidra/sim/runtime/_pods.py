"""The stand-in's view of a pod sandbox and its NRI encoding (as containerd fills it in)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cnidra.nri import api

# containerd copies the sandbox's OCI namespaces; only the network one has a path
_OTHER_NAMESPACES = ("pid", "ipc", "uts", "mount")


@dataclass(frozen=True)
class SimPod:
    """A pod sandbox as the runtime stand-in reports it. ``netns`` is the path the sim's fabric
    created (None for a host-network pod)."""

    id: str
    uid: str
    name: str
    namespace: str
    netns: str | None
    ips: tuple[str, ...] = ()
    pid: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_proto(self, *, removed: bool = False, stopped: bool = False) -> api.PodSandbox:
        """The PodSandbox message; in RemovePodSandbox the network entry is left out and in
        stop/remove the pid is 0, as containerd does."""
        labels = {"io.kubernetes.pod.name": self.name,
                  "io.kubernetes.pod.namespace": self.namespace,
                  "io.kubernetes.pod.uid": self.uid,
                  "io.cri-containerd.kind": "sandbox", **self.labels}
        annotations = {"io.kubernetes.cri.sandbox-id": self.id,
                       "io.kubernetes.cri.sandbox-name": self.name,
                       "io.kubernetes.cri.sandbox-namespace": self.namespace,
                       "io.kubernetes.cri.sandbox-uid": self.uid,
                       "io.kubernetes.cri.container-type": "sandbox", **self.annotations}
        namespaces = [api.LinuxNamespace(type=t) for t in _OTHER_NAMESPACES]
        if self.netns and not removed:
            namespaces.append(api.LinuxNamespace(type="network", path=self.netns))
        parent = f"/kubepods/besteffort/pod{self.uid}"
        return api.PodSandbox(
            id=self.id, name=self.name, uid=self.uid, namespace=self.namespace,
            labels=labels, annotations=annotations,
            linux=api.LinuxPodSandbox(cgroup_parent=parent, cgroups_path=f"{parent}/{self.id}",
                                      namespaces=namespaces),
            pid=0 if removed or stopped else self.pid, ips=list(self.ips),
        )
