"""The embedded cluster's pod lifecycle, as the kubelet and the runtime order it.

:class:`PodLifecycle` is the half of :class:`~cnidra.sim._cluster.Cluster` that scales
Deployments, runs the scheduler pass and starts and stops pod sandboxes against the nodes the
cluster built (``Cluster`` inherits it; it is not used alone):

* start (pods in parallel): NodePrepareResources → pod netns with a primary ``eth0`` →
  NRI RunPodSandbox (the driver attaches the claimed interfaces) → pod Running. A failed
  sandbox is torn down as the runtime does it (NRI StopPodSandbox and RemovePodSandbox, the
  netns removed) and a new one tried after a capped, doubling backoff;
* delete: NRI StopPodSandbox → NodeUnprepareResources → NRI RemovePodSandbox → netns removed →
  pod object deleted → the claim controller deletes the pod's generated claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from cnidra.errors import CnidraError
from cnidra.model.claims import ClaimRef
from cnidra.sim._fabric import Fabric
from cnidra.sim._inspect import addresses
from cnidra.sim._manifests import deployment_pods, template_hash
from cnidra.sim._objects import StoreObjects
from cnidra.sim._records import (
    DRIVER,
    BeforeSandbox,
    ClusterError,
    PodFailure,
    RunningPod,
    SandboxRetry,
    ScaleResult,
    SimNode,
    key_of,
    meta_of,
    retry_reason,
)
from cnidra.sim.runtime import PodHookError, SimPod
from cnidra.sim.scheduler import Scheduler, SyncReport

log = logging.getLogger("cnidra.sim._cluster")  # the logger it had before the split

_RETRY_CAP = 8.0  # seconds between two sandbox attempts at most


class PodLifecycle:
    """Pods of the embedded cluster: scale, reconcile, start/stop sandboxes, claim readiness.

    The attributes are set by :class:`~cnidra.sim._cluster.Cluster`'s constructor."""

    nodes: dict[str, SimNode]
    running: dict[str, RunningPod]  # "ns/name" -> pod
    failed: dict[str, PodFailure]
    deployments: dict[str, dict[str, Any]]
    retries: list[SandboxRetry]
    before_sandbox: BeforeSandbox | None
    objects: StoreObjects
    scheduler: Scheduler
    fabric: Fabric
    interrupted: asyncio.Event
    pod_timeout: float
    sandbox_attempts: int
    sandbox_backoff: float

    def check_interrupted(self) -> None:
        """Raise CancelledError once interrupted, also when a callee turned the cancellation
        into an error or swallowed it (gRPC reports CANCELLED; 3.11's wait_for can lose it)."""
        task = asyncio.current_task()
        if self.interrupted.is_set() or (task is not None and task.cancelling()):
            raise asyncio.CancelledError

    def pods_of(self, deployment: str) -> list[dict[str, Any]]:
        return [p for p in self.objects.list("pods")
                if any(o.get("name", "").startswith(f"{deployment}-")
                       and o.get("kind") == "ReplicaSet"
                       for o in meta_of(p).get("ownerReferences") or [])]

    async def scale(self, deployment: str, replicas: int) -> ScaleResult:
        """Create or delete the Deployment's pods, schedule, and start/stop their sandboxes."""
        dep = self.deployments.get(deployment)
        if dep is None:
            raise ClusterError(f"deployment {deployment!r} not found")
        current = self.pods_of(deployment)
        result = ScaleResult()
        if replicas < len(current):
            doomed = sorted(current, key=lambda p: str(meta_of(p).get("creationTimestamp")),
                            reverse=True)[: len(current) - replicas]
            result.stopped = await self.delete_pods(doomed)
        else:
            template = (dep.get("spec") or {}).get("template") or {}
            rs_name = f"{deployment}-{template_hash(template)}"
            for pod in deployment_pods(dep, replicas - len(current)):
                pod["metadata"]["ownerReferences"] = [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                    "uid": str(meta_of(dep).get("uid", "")), "controller": True}]
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
                   and key_of(meta_of(p)["namespace"], meta_of(p)["name"]) not in self.running
                   and key_of(meta_of(p)["namespace"], meta_of(p)["name"]) not in self.failed]
        outcomes = await asyncio.gather(*(self._start_pod(p) for p in pending))
        self.check_interrupted()
        started = [o for o in outcomes if isinstance(o, RunningPod)]
        failed = [o for o in outcomes if isinstance(o, PodFailure)]
        if started:
            await self.wait_claims_ready(started)
        return started, failed, report

    def _claims_of(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        namespace = str(meta_of(pod).get("namespace"))
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
        meta = meta_of(pod)
        namespace, name = str(meta["namespace"]), str(meta["name"])
        node = self.nodes[str(pod["spec"]["nodeName"])]
        assert node.kubelet is not None and node.runtime is not None
        refs = tuple(ClaimRef(namespace, str(meta_of(c)["name"]), str(meta_of(c)["uid"]))
                     for c in self._claims_of(pod)
                     if any(r.get("driver") == DRIVER for r in
                            (((c.get("status") or {}).get("allocation") or {}).get("devices")
                             or {}).get("results") or []))
        key = key_of(namespace, name)
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
        meta = meta_of(pod)
        namespace, name, uid = str(meta["namespace"]), str(meta["name"]), str(meta["uid"])
        sandbox_id = secrets.token_hex(32)
        node.pod_count += 1
        netns_path = await self.fabric.add_pod(node.name, sandbox_id, node.pod_count)
        netns = self.fabric.pods[sandbox_id]
        try:
            eth0 = await addresses(netns, "eth0")
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
        meta = meta_of(pod)
        failure = PodFailure(key_of(meta["namespace"], meta["name"]), node, reason)
        self.failed[failure.pod] = failure
        self._set_pod_status(pod, "Failed", "", reason)
        return failure

    def _set_pod_status(self, pod: dict[str, Any], phase: str, ip: str,
                        message: str = "") -> None:
        current = self.objects.get("pods", meta_of(pod)["name"], meta_of(pod)["namespace"])
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
        keys = [key_of(meta_of(p)["namespace"], meta_of(p)["name"]) for p in pods]
        await self._stop_pods([self.running[k] for k in keys if k in self.running])
        self.check_interrupted()
        for pod in pods:
            meta = meta_of(pod)
            self.failed.pop(key_of(meta["namespace"], meta["name"]), None)
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
        self.running.pop(key_of(pod.namespace, pod.name), None)
        if problems:
            raise ClusterError(f"pod {pod.name}: " + "; ".join(problems))
