"""``Cluster``: the whole embedded cluster in one process, around real ``cnidra driver`` processes.

One API server stand-in (loopback, also served inside every node namespace), the fabric (node
and pod namespaces, shared L2 segments), one Node object per node and, per node, the real
driver as a child process inside the node namespace (own state dir, sockets, private
``/var/lib/cni``), the kubelet stand-in (registration, NodePrepare/Unprepare) and the
containerd NRI stand-in. The scheduler stand-in creates claims from templates, allocates and
binds. Pod lifecycle, as the real components order it:

* start (pods in parallel): NodePrepareResources → pod netns with a primary ``eth0`` →
  NRI RunPodSandbox (the driver attaches the claimed interfaces) → pod Running. A sandbox
  whose RunPodSandbox fails is torn down as the runtime does it (NRI StopPodSandbox and
  RemovePodSandbox, so the driver cleans up; the netns removed) and, as the kubelet retries
  the pod sync, a new sandbox (new id, new netns) is created after a backoff (0.5 s doubling,
  ``sandbox_attempts`` in all, within ``pod_timeout``); the claims stay prepared meanwhile;
* delete: NRI StopPodSandbox → NodeUnprepareResources → NRI RemovePodSandbox → netns removed →
  pod object deleted → the claim controller deletes the pod's generated claims.

Everything of a run carries its run id (which embeds the process id): ``stop()`` removes it all
(also after Ctrl-C/SIGTERM), and ``reap_stale()`` removes what killed earlier runs left
(namespaces, work directories and the driver processes still running in them).

Modules: the records and :class:`ClusterError` live in ``_records``, the pod lifecycle
(:class:`~cnidra.sim._pods.PodLifecycle`, inherited here) in ``_pods``, the looks into pods and
leftovers in ``_inspect``, the reaping of stale runs in ``_reap``; this module builds and tears
down the cluster and re-exports the names the demo and the tests import from it.

Limits: root only; one driver per node; a pod whose prepare fails, or whose every sandbox
attempt failed, is reported as ``Failed`` (``retries`` lists each retried attempt and why) and
is not restarted later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnidra.errors import KubeAPIError
from cnidra.model.devices import Health
from cnidra.sim import _inspect
from cnidra.sim._fabric import Fabric, NodeSpec
from cnidra.sim._manifests import ManifestSet
from cnidra.sim._node import (
    DriverPaths,
    DriverProcess,
    free_port_in_netns,
    serve_api_in_netns,
    write_kubeconfig,
)
from cnidra.sim._objects import StoreObjects
from cnidra.sim._pods import PodLifecycle
from cnidra.sim._reap import WORK_PREFIX, processes_under, reap_stale
from cnidra.sim._records import (
    DRIVER,
    BeforeSandbox,
    ClusterError,
    Leftovers,
    PodFailure,
    RunningPod,
    SandboxRetry,
    ScaleResult,
    SimNode,
    meta_of,
    retry_reason,
)
from cnidra.sim.apiserver import ApiServer
from cnidra.sim.kubelet import KubeletStandIn
from cnidra.sim.runtime import NRIRuntime
from cnidra.sim.scheduler import ADMIN_ACCESS_LABEL, Scheduler

__all__ = [
    "DEFAULT_NODES", "DRIVER", "WORK_PREFIX", "BeforeSandbox", "Cluster", "ClusterError",
    "Leftovers", "PodFailure", "RunningPod", "SandboxRetry", "ScaleResult", "SimNode",
    "reap_stale", "retry_reason",
]

log = logging.getLogger(__name__)

DEFAULT_NODES = (NodeSpec("kind-worker", ("eth0", "eth1")), NodeSpec("kind-worker2", ("eth0",)))
_PLURALS = {"DeviceClass": "deviceclasses", "ResourceClaimTemplate": "resourceclaimtemplates",
            "ResourceClaim": "resourceclaims", "ResourceSlice": "resourceslices",
            "Namespace": "namespaces", "Node": "nodes", "Pod": "pods"}


class Cluster(PodLifecycle):
    """The embedded cluster. ``async with Cluster() as c: await c.apply(...); await c.scale(...)``.

    ``api_version`` ``"v1beta1"`` serves resource.k8s.io/v1beta1 only (a 1.32/1.33 cluster).
    ``driver_args`` are appended to every ``cnidra driver`` command line.
    ``sandbox_attempts``/``sandbox_backoff``: how often a pod's sandbox is tried and the first
    delay (doubling) between tries. ``before_sandbox(node, sandbox, attempt)`` runs right
    before each RunPodSandbox, the netns already set up (tests: disturb one attempt).
    """

    def __init__(
        self, *, nodes: Sequence[NodeSpec] = DEFAULT_NODES, api_version: str = "v1",
        driver_args: Sequence[str] = (), work_root: Path | None = None,
        start_timeout: float = 30.0, pod_timeout: float = 30.0,
        admin_namespaces: Sequence[str] = ("default",),
        interrupted: asyncio.Event | None = None,
        sandbox_attempts: int = 5, sandbox_backoff: float = 0.5,
    ) -> None:
        if api_version not in ("v1", "v1beta1"):
            raise ClusterError(f"api version {api_version!r}: must be v1 or v1beta1")
        self.specs = tuple(nodes)
        self.api_version = api_version
        self.driver_args = tuple(driver_args)
        self.work_root = work_root or Path(tempfile.gettempdir())
        self.start_timeout = start_timeout
        self.pod_timeout = pod_timeout
        self.admin_namespaces = tuple(admin_namespaces)
        self.sandbox_attempts = max(1, sandbox_attempts)
        self.sandbox_backoff = sandbox_backoff
        self.before_sandbox: BeforeSandbox | None = None
        self.retries: list[SandboxRetry] = []
        self.fabric = Fabric()
        self.workdir = self.work_root / f"{WORK_PREFIX}{self.fabric.run_id}"
        served = ("v1", "v1beta1", "v1beta2") if api_version == "v1" else ("v1beta1",)
        self.api = ApiServer(served=served, workdir=self.workdir,
                             git_version="v1.36.2" if api_version == "v1" else "v1.33.4")
        self.objects = StoreObjects(self.api.store)
        self.scheduler = Scheduler(self.objects)
        self.nodes: dict[str, SimNode] = {}
        self.running: dict[str, RunningPod] = {}  # "ns/name" -> pod
        self.failed: dict[str, PodFailure] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.started_at = 0.0
        self.saved_logs: Path | None = None
        self.interrupted = interrupted if interrupted is not None else asyncio.Event()
        self._started = False
        self._stopped = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                await asyncio.to_thread(self.save_logs)
            await self.stop()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: object) -> None:
        if exc is not None and not isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
            await asyncio.to_thread(self.save_logs)
        await self.stop()

    def save_logs(self) -> Path | None:
        """Copy the drivers' logs out of the work dir (which ``stop`` removes); the copy's dir."""
        logs = [(n.name, n.paths.log) for n in self.nodes.values() if n.paths.log.exists()]
        if not logs:
            return None
        target = self.work_root / f"cnidra-sim-logs-{self.fabric.run_id}"
        target.mkdir(parents=True, exist_ok=True)
        for name, path in logs:
            shutil.copyfile(path, target / f"{name}.driver.log")
        self.saved_logs = target
        return target

    async def start(self) -> None:
        """Build everything and wait until every node's driver is registered with its kubelet,
        connected to its runtime and has published its ResourceSlice."""
        if self._started:
            raise ClusterError("cluster already started")
        self._started = True
        self.started_at = time.monotonic()
        await reap_stale(self.work_root)
        self.workdir.mkdir(mode=0o700, parents=True)
        await self.api.start()
        await self.fabric.create(list(self.specs))
        self._cluster_objects()
        for index, spec in enumerate(self.specs):
            fabric_node = self.fabric.nodes[spec.name]
            root = self.workdir / f"n{index}"
            self.nodes[spec.name] = SimNode(spec, fabric_node.netns, DriverPaths.under(root),
                                            root / "kubeconfig")
        tasks = [asyncio.create_task(self._start_node(n), name=f"start {n.name}")
                 for n in self.nodes.values()]
        try:
            await asyncio.gather(*tasks)
        except BaseException:  # no node may go on starting while the cluster is torn down
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        await self.wait_published()

    def _cluster_objects(self) -> None:
        for spec in self.specs:
            node = self.fabric.nodes[spec.name]
            self.objects.create("nodes", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": spec.name, "labels": {"kubernetes.io/hostname": spec.name,
                                                           "kubernetes.io/os": "linux"}},
                "status": {"addresses": [{"type": "InternalIP", "address": node.address}],
                           "conditions": [{"type": "Ready", "status": "True",
                                           "reason": "KubeletReady"}]}})
        for name in ("default", "kube-system"):
            labels = {"kubernetes.io/metadata.name": name}
            if name in self.admin_namespaces:
                labels[ADMIN_ACCESS_LABEL] = "true"
            self.objects.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": name, "labels": labels}})

    async def _start_node(self, node: SimNode) -> None:
        node_path = f"/run/netns/{node.netns}"
        node.url = await serve_api_in_netns(self.api, node_path)
        write_kubeconfig(self.api, node.url, node.kubeconfig)
        node.metrics_port = await asyncio.to_thread(free_port_in_netns, node_path)
        node.runtime = NRIRuntime(str(node.paths.nri_socket))
        await node.runtime.start()
        node.kubelet = KubeletStandIn(str(node.paths.registry_dir), node_name=node.name)
        await node.kubelet.start()
        node.driver = DriverProcess(
            netns=node.netns, node_name=node.name, kubeconfig=node.kubeconfig, paths=node.paths,
            metrics_port=node.metrics_port,
            extra_args=("--cleanup-on-exit", "true", *self.driver_args))
        await node.driver.start()
        kubelet, runtime = node.kubelet, node.runtime

        async def registered() -> None:
            await kubelet.wait_registered(DRIVER, timeout=self.start_timeout)
            await runtime.wait_for_plugin(timeout=self.start_timeout)

        waiting = asyncio.ensure_future(registered())
        exited = asyncio.ensure_future(node.driver.wait(self.start_timeout + 1))
        try:
            await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (waiting, exited):
                future.cancel()
            await asyncio.gather(waiting, exited, return_exceptions=True)
        if not waiting.cancelled() and waiting.exception() is None:
            return
        what = ("stopped before it registered with the kubelet and the runtime"
                if node.driver.returncode is not None
                else "did not register with the kubelet and the runtime within "
                f"{self.start_timeout:g}s")
        raise ClusterError(self._driver_trouble(node, what))

    def _driver_trouble(self, node: SimNode, what: str) -> str:
        """One line: what the node's driver failed to do, its state and its last log line."""
        driver = node.driver
        if driver is None:
            return f"node {node.name}: the driver {what} (not started)"
        state = (f"exited with {driver.returncode}" if driver.returncode is not None
                 else f"still running as pid {driver.pid}")
        lines = [ln.strip() for ln in driver.log_tail(20).splitlines() if ln.strip()]
        last = f"; last log line: {lines[-1][:300]}" if lines else "; it logged nothing"
        return f"node {node.name}: the driver {what} ({state}){last}"

    async def wait_published(self) -> None:
        """Until every node's slice lists the node's interfaces."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while True:
            missing = {n.name: sorted(set(n.spec.interfaces) - set(self.published(n.name)))
                       for n in self.nodes.values()}
            missing = {k: v for k, v in missing.items() if v}
            if not missing:
                return
            dead = [n for n in self.nodes.values()
                    if n.driver is not None and n.driver.returncode is not None]
            if dead:
                raise ClusterError(self._driver_trouble(dead[0], "stopped"))
            if loop.time() > deadline:
                node = self.nodes[next(iter(missing))]
                raise ClusterError(self._driver_trouble(
                    node, f"did not publish {', '.join(missing[node.name])} within "
                          f"{self.start_timeout:g}s"))
            await asyncio.sleep(0.05)

    def published(self, node: str) -> list[str]:
        """Device names in the node's ResourceSlices."""
        slices = self.api.store.list(
            "resourceslices.resource.k8s.io", version=self.api.store.served[0],
            field_selector=f"spec.nodeName={node},spec.driver={DRIVER}")["items"]
        return [str(d.get("name")) for s in slices for d in s["spec"].get("devices") or []]

    async def stop(self) -> None:
        """Tear everything down (idempotent; every step runs even when an earlier one fails)."""
        if self._stopped:
            return
        self._stopped = True
        steps: list[tuple[str, Any]] = []
        task = asyncio.current_task()
        graceful = not (self.interrupted.is_set() or (task is not None and task.cancelling()))
        if self.running and graceful:  # interrupted: the namespaces go anyway, be quick
            steps.append(("pods", lambda: asyncio.wait_for(
                self._stop_pods(list(self.running.values())), 10)))
        for node in self.nodes.values():
            if node.driver is not None and node.driver.pid is not None:
                steps.append((f"{node.name} driver", node.driver.stop))
        for node in self.nodes.values():
            if node.kubelet is not None:
                steps.append((f"{node.name} kubelet", node.kubelet.stop))
            if node.runtime is not None:
                steps.append((f"{node.name} runtime", node.runtime.close))
        steps += [("api server", self.api.stop), ("network", self.fabric.destroy)]
        for what, step in steps:
            try:
                await asyncio.shield(step())
            except (Exception, asyncio.CancelledError) as exc:
                log.warning("cleanup of %s failed: %s", what, str(exc) or type(exc).__name__)
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)

    async def residue(self) -> list[str]:
        """What of this run is still there (after ``stop``: nothing): namespaces, the work
        directory, driver processes."""
        left = [f"netns {ns}" for ns in await asyncio.to_thread(self.fabric.namespaces)]
        if await asyncio.to_thread(self.workdir.exists):
            left.append(f"directory {self.workdir}")
        pids = await asyncio.to_thread(processes_under, self.workdir)
        left += [f"process {pid}" for pid in pids if pid != os.getpid()]
        return left

    # --- objects ------------------------------------------------------------------------------

    def apply(self, manifests: ManifestSet) -> list[dict[str, Any]]:
        """Create the manifests' cluster objects (namespaces first); returns the workloads.
        Deployments are remembered for ``scale``; bare Pods are created as they are."""
        order = ["Namespace", "DeviceClass", "ResourceClaimTemplate", "ResourceClaim"]
        objects = sorted(manifests.objects, key=lambda o: order.index(o["kind"])
                         if o.get("kind") in order else len(order))
        for obj in objects:
            self.create(obj)
        for workload in manifests.workloads:
            if workload["kind"] == "Deployment":
                self.deployments[str(meta_of(workload).get("name"))] = workload
            else:
                self.create(workload)
        return manifests.workloads

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create one object as ``kubectl create`` would (its own apiVersion)."""
        kind = str(obj.get("kind"))
        api_version = str(obj.get("apiVersion"))
        group, _, version = api_version.rpartition("/")
        plural = _PLURALS.get(kind)
        if plural is None:
            raise ClusterError(f"{kind} {meta_of(obj).get('name')}: kind not supported by the "
                               "embedded cluster")
        resource = f"{plural}.{group}" if group else plural
        namespace = meta_of(obj).get("namespace")
        try:
            return self.api.store.create(resource, obj, namespace, version=version,
                                         field_manager="kubectl-create").obj
        except KubeAPIError as exc:
            if exc.status == 404:
                raise ClusterError(f"{kind} {meta_of(obj).get('name')}: {api_version} is not "
                                   f"served by this cluster (resource.k8s.io/"
                                   f"{self.api.store.served[0]} is)") from exc
            message = exc.body.get("message") or str(exc)
            raise ClusterError(f"{kind} {meta_of(obj).get('name')}: {message}") from exc

    # --- looking around (cnidra.sim._inspect) -------------------------------------------------

    async def link_kind(self, pod: RunningPod, ifname: str) -> tuple[str, bool]:
        """(link kind such as ``macvlan``, administratively UP) of ``ifname`` in the pod."""
        return await _inspect.link_kind(pod.netns, ifname)

    async def interface(self, pod: RunningPod, ifname: str) -> tuple[str, str] | None:
        """(address/prefix, MAC) of ``ifname`` inside the pod, None when it is not there."""
        return await _inspect.interface(pod.netns, ifname)

    async def ping(self, pod: RunningPod, address: str, count: int = 1) -> tuple[bool, str]:
        """``ip netns exec <pod> ping -c N -W 2 <address>``: (ok, ping's summary line)."""
        return await _inspect.ping(pod.netns, address, count)

    def device_health(self, node: str) -> dict[str, tuple[Health, str]]:
        """The kubelet's latest view of the node's device health (empty: none streamed)."""
        kubelet = self.nodes[node].kubelet
        return kubelet.health(DRIVER) if kubelet is not None and kubelet.plugins else {}

    async def leftovers(self, settle: float = 3.0) -> Leftovers:
        """Interfaces, namespaces, IPAM leases, checkpoint entries and objects still present
        (looked at again for up to ``settle`` seconds while the kernel destroys namespaces)."""
        return await _inspect.leftovers(self.fabric, self.nodes.values(), self.objects, settle)

    async def _leftovers_now(self) -> Leftovers:
        return await _inspect.leftovers_now(self.fabric, list(self.nodes.values()), self.objects)
