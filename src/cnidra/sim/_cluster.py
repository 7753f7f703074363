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

Limits: root only; one driver per node; a pod whose prepare fails, or whose every sandbox
attempt failed, is reported as ``Failed`` (``retries`` lists each retried attempt and why) and
is not restarted later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnidra.claims import Checkpoint
from cnidra.errors import CnidraError, KubeAPIError
from cnidra.model.claims import ClaimRef
from cnidra.model.devices import Health
from cnidra.sim._fabric import Fabric, NodeSpec
from cnidra.sim._fabric import reap_stale as reap_stale_namespaces
from cnidra.sim._manifests import ManifestSet, deployment_pods, template_hash
from cnidra.sim._node import (
    DriverPaths,
    DriverProcess,
    free_port_in_netns,
    serve_api_in_netns,
    write_kubeconfig,
)
from cnidra.sim._objects import StoreObjects
from cnidra.sim.apiserver import ApiServer
from cnidra.sim.kubelet import KubeletStandIn
from cnidra.sim.runtime import NRIRuntime, PodHookError, SimPod
from cnidra.sim.scheduler import ADMIN_ACCESS_LABEL, Scheduler, SyncReport

log = logging.getLogger(__name__)

DRIVER = "cni.dra.networking.x-k8s.io"
DEFAULT_NODES = (NodeSpec("kind-worker", ("eth0", "eth1")), NodeSpec("kind-worker2", ("eth0",)))
WORK_PREFIX = "cnidra-sim-"
_WORK_RE = re.compile(rf"^{WORK_PREFIX}(?P<pid>\d+)x[0-9a-f]{{3}}$")
_PLURALS = {"DeviceClass": "deviceclasses", "ResourceClaimTemplate": "resourceclaimtemplates",
            "ResourceClaim": "resourceclaims", "ResourceSlice": "resourceslices",
            "Namespace": "namespaces", "Node": "nodes", "Pod": "pods"}


class ClusterError(CnidraError):
    """The embedded cluster could not be built, or a component misbehaved (names which)."""


@dataclass
class SimNode:
    """One node of the embedded cluster and the pieces running for it."""

    spec: NodeSpec
    netns: str
    paths: DriverPaths
    kubeconfig: Path
    url: str = ""
    driver: DriverProcess | None = None
    kubelet: KubeletStandIn | None = None
    runtime: NRIRuntime | None = None
    metrics_port: int = 0
    pod_count: int = 0

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class RunningPod:
    """A pod whose sandbox runs: where, which netns, and the claims prepared for it."""

    namespace: str
    name: str
    uid: str
    node: str
    sandbox: SimPod
    netns: str  # the namespace name (``ip -n``)
    claims: tuple[ClaimRef, ...]


@dataclass
class PodFailure:
    pod: str
    node: str
    reason: str


@dataclass(frozen=True)
class SandboxRetry:
    """One failed sandbox attempt that was torn down and retried: ``reason`` names the step
    and the error without the pod (so equal reasons of different pods can be counted)."""

    pod: str
    node: str
    attempt: int
    reason: str


_RETRY_CAP = 8.0  # seconds between two sandbox attempts at most
_HOOK_PREFIX = re.compile(r"^(?:NRI plugin failed \w+: )?cnidra: (?P<event>\w+) for pod \S+ "
                          r"\(sandbox [0-9a-f]+\)(?P<colon>:?) ?")
_CODE_SUFFIX = re.compile(r" \(code \d+\)$")


def retry_reason(exc: BaseException) -> str:
    """``RunPodSandbox did not finish within 1.75s`` out of the hook's error for one pod."""
    text = _CODE_SUFFIX.sub("", str(exc))
    match = _HOOK_PREFIX.match(text)
    if match is None:
        return f"RunPodSandbox: {text}"
    rest = text[match.end():]
    return f"{match['event']}{': ' if match['colon'] else ' '}{rest}"


BeforeSandbox = Callable[["SimNode", SimPod, int], Awaitable[None]]


@dataclass
class Leftovers:
    """What is still there after the pods are gone (all empty: a clean node)."""

    pod_namespaces: list[str] = field(default_factory=list)
    links: dict[str, list[str]] = field(default_factory=dict)  # node -> unexpected links
    ipam_leases: dict[str, list[str]] = field(default_factory=dict)  # node -> lease files
    checkpoint: dict[str, list[str]] = field(default_factory=dict)  # node -> claim UIDs
    pods: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.pod_namespaces or any(self.links.values())
                    or any(self.ipam_leases.values()) or any(self.checkpoint.values())
                    or self.pods or self.claims)

    def counts(self) -> dict[str, int]:
        return {"interfaces": sum(len(v) for v in self.links.values()),
                "pod namespaces": len(self.pod_namespaces),
                "IPAM leases": sum(len(v) for v in self.ipam_leases.values()),
                "checkpoint entries": sum(len(v) for v in self.checkpoint.values()),
                "pods": len(self.pods), "claims": len(self.claims)}


@dataclass
class ScaleResult:
    started: list[RunningPod] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    failed: list[PodFailure] = field(default_factory=list)
    report: SyncReport = field(default_factory=SyncReport)
    retried: list[SandboxRetry] = field(default_factory=list)


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


async def _ip_json(*args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        "ip", "-j", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise ClusterError(f"ip -j {' '.join(args)}: {err.decode().strip()}")
    return json.loads(out or b"[]")


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _stale_work_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in sorted(root.iterdir()) if (m := _WORK_RE.match(p.name)) is not None
            and p.is_dir() and not _pid_alive(int(m["pid"]))]


def _processes_under(directory: Path) -> list[int]:
    """PIDs whose command line names ``directory`` (drivers of a killed run)."""
    needle = str(directory).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(proc.name))
    return found


def _reap_work_dirs(root: Path) -> list[str]:
    removed = []
    for directory in _stale_work_dirs(root):
        for pid in _processes_under(directory):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(str(directory))
    return removed


async def reap_stale(work_root: Path | None = None) -> list[str]:
    """Remove what killed earlier runs left: driver processes, work dirs, namespaces."""
    root = work_root or Path(tempfile.gettempdir())
    removed = await asyncio.to_thread(_reap_work_dirs, root)
    removed += await reap_stale_namespaces()
    return removed


class Cluster:
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

    def check_interrupted(self) -> None:
        """Raise CancelledError once interrupted, also when a callee turned the cancellation
        into an error or swallowed it (gRPC reports CANCELLED; 3.11's wait_for can lose it)."""
        task = asyncio.current_task()
        if self.interrupted.is_set() or (task is not None and task.cancelling()):
            raise asyncio.CancelledError

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
        pids = await asyncio.to_thread(_processes_under, self.workdir)
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
                self.deployments[str(_meta(workload).get("name"))] = workload
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
            raise ClusterError(f"{kind} {_meta(obj).get('name')}: kind not supported by the "
                               "embedded cluster")
        resource = f"{plural}.{group}" if group else plural
        namespace = _meta(obj).get("namespace")
        try:
            return self.api.store.create(resource, obj, namespace, version=version,
                                         field_manager="kubectl-create").obj
        except KubeAPIError as exc:
            if exc.status == 404:
                raise ClusterError(f"{kind} {_meta(obj).get('name')}: {api_version} is not "
                                   f"served by this cluster (resource.k8s.io/"
                                   f"{self.api.store.served[0]} is)") from exc
            message = exc.body.get("message") or str(exc)
            raise ClusterError(f"{kind} {_meta(obj).get('name')}: {message}") from exc

    def pods_of(self, deployment: str) -> list[dict[str, Any]]:
        return [p for p in self.objects.list("pods")
                if any(o.get("name", "").startswith(f"{deployment}-")
                       and o.get("kind") == "ReplicaSet"
                       for o in _meta(p).get("ownerReferences") or [])]

    # --- pods ---------------------------------------------------------------------------------

    async def scale(self, deployment: str, replicas: int) -> ScaleResult:
        """Create or delete the Deployment's pods, schedule, and start/stop their sandboxes."""
        dep = self.deployments.get(deployment)
        if dep is None:
            raise ClusterError(f"deployment {deployment!r} not found")
        current = self.pods_of(deployment)
        result = ScaleResult()
        if replicas < len(current):
            doomed = sorted(current, key=lambda p: str(_meta(p).get("creationTimestamp")),
                            reverse=True)[: len(current) - replicas]
            result.stopped = await self.delete_pods(doomed)
        else:
            template = (dep.get("spec") or {}).get("template") or {}
            rs_name = f"{deployment}-{template_hash(template)}"
            for pod in deployment_pods(dep, replicas - len(current)):
                pod["metadata"]["ownerReferences"] = [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                    "uid": str(_meta(dep).get("uid", "")), "controller": True}]
                self.objects.create("pods", pod)
        retried_before = len(self.retries)
        started, failed, report = await self.reconcile()
        result.started, result.failed, result.report = started, failed, report
        result.retried = self.retries[retried_before:]
        return result

    async def reconcile(self) -> tuple[list[RunningPod], list[PodFailure], SyncReport]:
        """One scheduler pass, then start every bound pod that does not run yet (in parallel)
        and wait until the driver has reported every started pod's claims Ready."""
        report = self.scheduler.sync()
        pending = [p for p in self.objects.list("pods")
                   if (p.get("spec") or {}).get("nodeName")
                   and _key(_meta(p)["namespace"], _meta(p)["name"]) not in self.running
                   and _key(_meta(p)["namespace"], _meta(p)["name"]) not in self.failed]
        outcomes = await asyncio.gather(*(self._start_pod(p) for p in pending))
        self.check_interrupted()
        started = [o for o in outcomes if isinstance(o, RunningPod)]
        failed = [o for o in outcomes if isinstance(o, PodFailure)]
        if started:
            await self.wait_claims_ready(started)
        return started, failed, report

    def _claims_of(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        namespace = str(_meta(pod).get("namespace"))
        statuses = {s.get("name"): s.get("resourceClaimName")
                    for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []}
        claims = []
        for entry in (pod.get("spec") or {}).get("resourceClaims") or []:
            name = entry.get("resourceClaimName") or statuses.get(entry.get("name"))
            claim = self.objects.get("resourceclaims", name, namespace) if name else None
            if claim is not None:
                claims.append(claim)
        return claims

    async def _start_pod(self, pod: dict[str, Any]) -> RunningPod | PodFailure:
        meta = _meta(pod)
        namespace, name = str(meta["namespace"]), str(meta["name"])
        node = self.nodes[str(pod["spec"]["nodeName"])]
        assert node.kubelet is not None and node.runtime is not None
        refs = tuple(ClaimRef(namespace, str(_meta(c)["name"]), str(_meta(c)["uid"]))
                     for c in self._claims_of(pod)
                     if any(r.get("driver") == DRIVER for r in
                            (((c.get("status") or {}).get("allocation") or {}).get("devices")
                             or {}).get("results") or []))
        key = _key(namespace, name)
        if refs:
            try:
                outcomes = await node.kubelet.prepare(refs, driver=DRIVER)
            except CnidraError as exc:
                self.check_interrupted()
                return self._fail(pod, node.name, f"NodePrepareResources: {exc}")
            errors = [o.error for o in outcomes.values() if o.error]
            if errors:
                return self._fail(pod, node.name, f"NodePrepareResources: {errors[0]}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pod_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                running = await self._run_sandbox(node, pod, refs, attempt)
            except (PodHookError, CnidraError) as exc:
                self.check_interrupted()
                delay = min(self.sandbox_backoff * 2 ** (attempt - 1), _RETRY_CAP)
                if attempt < self.sandbox_attempts and loop.time() + delay < deadline:
                    retry = SandboxRetry(key, node.name, attempt, retry_reason(exc))
                    self.retries.append(retry)
                    log.info("pod %s: sandbox attempt %d failed (%s); a new sandbox in %.1fs",
                             key, attempt, retry.reason, delay)
                    await asyncio.sleep(delay)
                    self.check_interrupted()
                    continue
                if refs:
                    with contextlib.suppress(CnidraError):
                        await node.kubelet.unprepare(refs, driver=DRIVER)
                tries = f" (after {attempt} sandbox attempts)" if attempt > 1 else ""
                return self._fail(pod, node.name, f"RunPodSandbox: {exc}{tries}")
            self.running[key] = running
            self._set_pod_status(pod, "Running",
                                 running.sandbox.ips[0] if running.sandbox.ips else "")
            return running

    async def _run_sandbox(self, node: SimNode, pod: dict[str, Any],
                           refs: tuple[ClaimRef, ...], attempt: int) -> RunningPod:
        """One sandbox attempt: a fresh id and netns, RunPodSandbox; when that fails, the
        runtime's tear-down of the half-made sandbox (NRI stop + remove, netns removed)."""
        assert node.runtime is not None
        meta = _meta(pod)
        namespace, name, uid = str(meta["namespace"]), str(meta["name"]), str(meta["uid"])
        sandbox_id = secrets.token_hex(32)
        node.pod_count += 1
        netns_path = await self.fabric.add_pod(node.name, sandbox_id, node.pod_count)
        netns = self.fabric.pods[sandbox_id]
        try:
            eth0 = await self._addresses(netns, "eth0")
        except ClusterError:
            await self.fabric.remove_pod(sandbox_id)
            raise
        sandbox = SimPod(id=sandbox_id, uid=uid, name=name, namespace=namespace,
                         netns=netns_path, ips=tuple(a.split("/")[0] for a, _ in eth0[:1]),
                         labels=dict(meta.get("labels") or {}))
        try:
            if self.before_sandbox is not None:
                await self.before_sandbox(node, sandbox, attempt)
            await node.runtime.run_pod_sandbox(sandbox)
        except (PodHookError, CnidraError):
            await self._tear_down_failed(node, sandbox)
            raise
        return RunningPod(namespace, name, uid, node.name, sandbox, netns, refs)

    async def _tear_down_failed(self, node: SimNode, sandbox: SimPod) -> None:
        """What the runtime does with a sandbox whose start failed (errors only logged)."""
        assert node.runtime is not None
        for step in (node.runtime.stop_pod_sandbox, node.runtime.remove_pod_sandbox):
            try:
                await step(sandbox)
            except CnidraError as exc:
                log.warning("pod %s/%s: tear-down of failed sandbox %s: %s", sandbox.namespace,
                            sandbox.name, sandbox.id[:13], exc)
        await self.fabric.remove_pod(sandbox.id)

    def _fail(self, pod: dict[str, Any], node: str, reason: str) -> PodFailure:
        meta = _meta(pod)
        failure = PodFailure(_key(meta["namespace"], meta["name"]), node, reason)
        self.failed[failure.pod] = failure
        self._set_pod_status(pod, "Failed", "", reason)
        return failure

    def _set_pod_status(self, pod: dict[str, Any], phase: str, ip: str,
                        message: str = "") -> None:
        current = self.objects.get("pods", _meta(pod)["name"], _meta(pod)["namespace"])
        if current is None:
            return
        status = current.setdefault("status", {})
        status["phase"] = phase
        if ip:
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        ready = "True" if phase == "Running" else "False"
        status["conditions"] = [c for c in status.get("conditions") or []
                                if c.get("type") not in ("Ready", "ContainersReady")] + [
            {"type": "Ready", "status": ready, **({"message": message} if message else {})}]
        self.objects.update("pods", current)

    async def wait_claims_ready(self, pods: Sequence[RunningPod]) -> None:
        """Until each pod's claims carry our driver's status.devices with Ready=True."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pod_timeout
        waiting = [(p, r) for p in pods for r in p.claims]
        while waiting:
            self.check_interrupted()
            waiting = [(p, r) for p, r in waiting if not self._claim_ready(r)]
            if not waiting:
                return
            if loop.time() > deadline:
                pod, ref = waiting[0]
                node = self.nodes[pod.node]
                raise ClusterError(f"claim {ref.namespace}/{ref.name} of pod {pod.name}: no "
                                   f"Ready status.devices from the driver on {node.name} within "
                                   f"{self.pod_timeout:g}s ({len(waiting)} claims waiting)")
            await asyncio.sleep(0.05)

    def _claim_ready(self, ref: ClaimRef) -> bool:
        claim = self.objects.get("resourceclaims", ref.name, ref.namespace)
        devices = [d for d in ((claim or {}).get("status") or {}).get("devices") or []
                   if d.get("driver") == DRIVER]
        return bool(devices) and all(
            any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in d.get("conditions") or []) for d in devices)

    async def delete_pods(self, pods: Sequence[dict[str, Any]]) -> list[str]:
        """Delete pods the way the kubelet tears them down; then the claim controller runs."""
        keys = [_key(_meta(p)["namespace"], _meta(p)["name"]) for p in pods]
        await self._stop_pods([self.running[k] for k in keys if k in self.running])
        self.check_interrupted()
        for pod in pods:
            meta = _meta(pod)
            self.failed.pop(_key(meta["namespace"], meta["name"]), None)
            self.objects.delete("pods", str(meta["name"]), str(meta["namespace"]))
        self.scheduler.sync()  # the claim controller deletes the pods' generated claims
        return keys

    async def _stop_pods(self, pods: Sequence[RunningPod]) -> None:
        results = await asyncio.gather(*(self._stop_pod(p) for p in pods),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise ClusterError(f"{len(errors)} pods did not stop cleanly: {errors[0]}")

    async def _stop_pod(self, pod: RunningPod) -> None:
        node = self.nodes[pod.node]
        assert node.kubelet is not None and node.runtime is not None
        problems: list[str] = []
        try:
            await node.runtime.stop_pod_sandbox(pod.sandbox)
        except CnidraError as exc:  # containerd only logs it; DEL also runs on remove
            problems.append(f"StopPodSandbox: {exc}")
        if pod.claims:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.pod_timeout
            while True:  # the kubelet retries unprepare until the driver lets go
                try:
                    errors = await node.kubelet.unprepare(pod.claims, driver=DRIVER)
                except CnidraError as exc:
                    errors = {"": str(exc)}
                errors = {k: v for k, v in errors.items() if v}
                if not errors or loop.time() > deadline:
                    break
                await asyncio.sleep(0.2)
            if errors:
                problems.append(f"NodeUnprepareResources: {next(iter(errors.values()))}")
        try:
            await node.runtime.remove_pod_sandbox(pod.sandbox)
        except CnidraError as exc:
            problems.append(f"RemovePodSandbox: {exc}")
        await self.fabric.remove_pod(pod.sandbox.id)
        self.running.pop(_key(pod.namespace, pod.name), None)
        if problems:
            raise ClusterError(f"pod {pod.name}: " + "; ".join(problems))

    # --- looking around -----------------------------------------------------------------------

    async def link_kind(self, pod: RunningPod, ifname: str) -> tuple[str, bool]:
        """(link kind such as ``macvlan``, administratively UP) of ``ifname`` in the pod."""
        links = await _ip_json("-n", pod.netns, "-d", "link", "show", ifname)
        if not links:
            return "", False
        kind = str((links[0].get("linkinfo") or {}).get("info_kind") or "")
        return kind, "UP" in (links[0].get("flags") or [])

    @staticmethod
    async def _addresses(netns: str, ifname: str) -> list[tuple[str, str]]:
        """(address/prefix, mac) of ``ifname`` in ``netns`` (IPv4 first)."""
        links = await _ip_json("-n", netns, "addr", "show", ifname)
        out = []
        for link in links:
            mac = str(link.get("address", ""))
            infos = sorted(link.get("addr_info") or [], key=lambda a: a.get("family") != "inet")
            for info in infos:
                if info.get("scope") == "link" and info.get("family") == "inet6":
                    continue
                out.append((f"{info['local']}/{info['prefixlen']}", mac))
            if not out:
                out.append(("", mac))
        return out

    async def interface(self, pod: RunningPod, ifname: str) -> tuple[str, str] | None:
        """(address/prefix, MAC) of ``ifname`` inside the pod, None when it is not there."""
        try:
            found = await self._addresses(pod.netns, ifname)
        except ClusterError:
            return None
        return found[0] if found else None

    async def ping(self, pod: RunningPod, address: str, count: int = 1) -> tuple[bool, str]:
        """``ip netns exec <pod> ping -c N -W 2 <address>``: (ok, ping's summary line)."""
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", pod.netns, "ping", "-c", str(count), "-W", "2", address,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 5 + 2 * count)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return False, "ping timed out"
        lines = out.decode(errors="replace").splitlines()
        summary = next((ln for ln in lines if "packets transmitted" in ln), lines[-1] if lines
                       else "")
        rtt = next((ln for ln in lines if ln.startswith(("rtt", "round-trip"))), "")
        return proc.returncode == 0, (summary + (f"; {rtt}" if rtt else "")).strip()

    def device_health(self, node: str) -> dict[str, tuple[Health, str]]:
        """The kubelet's latest view of the node's device health (empty: none streamed)."""
        kubelet = self.nodes[node].kubelet
        return kubelet.health(DRIVER) if kubelet is not None and kubelet.plugins else {}

    async def leftovers(self, settle: float = 3.0) -> Leftovers:
        """Interfaces, namespaces, IPAM leases, checkpoint entries and objects still present.

        The kernel destroys a deleted namespace (and the veth ends in it) asynchronously, so
        this looks again for up to ``settle`` seconds before it reports anything."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle
        while True:
            found = await self._leftovers_now()
            if found.clean or loop.time() >= deadline:
                return found
            await asyncio.sleep(0.1)

    async def _leftovers_now(self) -> Leftovers:
        found = Leftovers()
        nodes_and_lan = {self.fabric.lan, *(n.netns for n in self.nodes.values())}
        found.pod_namespaces = [ns for ns in await asyncio.to_thread(self.fabric.namespaces)
                                if ns not in nodes_and_lan]
        for node in self.nodes.values():
            links = await _ip_json("-n", node.netns, "link", "show")
            expected = {"lo", *node.spec.interfaces}
            found.links[node.name] = sorted(str(li["ifname"]) for li in links
                                            if li.get("ifname") not in expected)
            found.ipam_leases[node.name] = await asyncio.to_thread(_leases, node.paths.ipam_dir)
            claims = await asyncio.to_thread(Checkpoint(node.paths.state_dir).load)
            found.checkpoint[node.name] = sorted(claims)
        found.pods = [_key(_meta(p)["namespace"], _meta(p)["name"])
                      for p in self.objects.list("pods")]
        found.claims = [_key(_meta(c)["namespace"], _meta(c)["name"])
                        for c in self.objects.list("resourceclaims")]
        return found


def _leases(ipam_dir: Path) -> list[str]:
    """host-local lease files (one per allocated address) under ``<dir>/networks/<net>/``."""
    networks = ipam_dir / "networks"
    if not networks.is_dir():
        return []
    return sorted(f"{net.name}/{lease.name}" for net in networks.iterdir() if net.is_dir()
                  for lease in net.iterdir()
                  if lease.name != "lock" and not lease.name.startswith("last_reserved_ip"))
