"""The demo scenario on the embedded cluster.

``run_demo`` builds a :class:`~cnidra.sim._cluster.Cluster`, creates the manifests (the talk's
demo by default), scales the Deployment up, shows what a user would check with kubectl
(slices, claims, pods with their secondary interface read from the pod's namespace, one
claim's ``status.devices``, a ping between two pods over that interface), scales down to 0 and
checks that nothing is left. Every check feeds :class:`DemoResult`; the report it prints is
rendered by :mod:`cnidra.sim._report` (re-exported here).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cnidra.errors import CnidraError, ConfigError
from cnidra.model.devices import Health
from cnidra.sim._cluster import (
    DRIVER,
    Cluster,
    RunningPod,
    ScaleResult,
)
from cnidra.sim._fabric import NodeSpec
from cnidra.sim._manifests import MANIFESTS, ManifestSet, default_manifests, load
from cnidra.sim._report import (
    DemoResult,
    PodView,
    Printer,
    claim_state,
    claims_table,
    leftovers_line,
    pods_table,
    ready_status,
    retries_lines,
    slices_table,
    status_devices_yaml,
    summary_line,
    table,
)
from cnidra.sim.scheduler import ADMIN_ACCESS_LABEL

__all__ = [
    "DemoError", "DemoOptions", "DemoResult", "PodView", "Printer", "claim_state",
    "claims_table", "leftovers_line", "pods_table", "retries_lines", "run_demo",
    "select_manifests", "slices_table", "status_devices_yaml", "summary_line", "table",
]

_TALK = MANIFESTS / "v1" / "demo.yaml"
_DEFAULT_CLASS = "cni.networking.x-k8s.io"


class DemoError(CnidraError):
    """The demo could not run to its end (the message is one line and names the cause)."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``cnidra demo`` was asked for. Empty ``manifests``: the embedded talk demo."""

    manifests: tuple[Path, ...] = ()
    api_version: str = "v1"
    replicas: int | None = None
    keep: bool = False
    nodes: tuple[NodeSpec, ...] = (NodeSpec("kind-worker", ("eth0", "eth1")),
                                   NodeSpec("kind-worker2", ("eth0",)))
    driver_args: tuple[str, ...] = ()



def select_manifests(options: DemoOptions) -> tuple[ManifestSet, list[str]]:
    """The manifests to run and how to name them. Without any workload the talk's Deployment
    runs, pointed at the manifests' only ResourceClaimTemplate when there is exactly one;
    without the DeviceClass the manifests use by name, the builtin one is added."""
    if options.manifests:
        manifests = load(list(options.manifests))
        shown = [str(p) for p in options.manifests]
    else:
        paths = default_manifests(options.api_version)
        manifests = load(paths)
        shown = [f"<builtin>/{p.relative_to(MANIFESTS)}" for p in paths]
    classes = {c["metadata"]["name"] for c in manifests.of_kind("DeviceClass")}
    if _DEFAULT_CLASS not in classes and _DEFAULT_CLASS in json.dumps(manifests.objects):
        builtin = MANIFESTS / "v1" / "deviceclass.yaml"
        if options.api_version == "v1beta1":
            builtin = MANIFESTS / "v1beta1" / "demo.yaml"
        manifests.objects[:0] = load([builtin]).of_kind("DeviceClass")
        shown.append(f"<builtin>/{builtin.relative_to(MANIFESTS)} (DeviceClass only)")
    if not manifests.workloads:
        talk = next(w for w in load([_TALK]).workloads if w.get("kind") == "Deployment")
        templates = manifests.of_kind("ResourceClaimTemplate")
        if len(templates) == 1:
            name = templates[0]["metadata"]["name"]
            for entry in talk["spec"]["template"]["spec"].get("resourceClaims") or []:
                entry["resourceClaimTemplateName"] = name
        manifests.workloads.append(talk)
        shown.append("<builtin>/v1/demo.yaml (Deployment only)")
    if options.replicas is not None:
        if options.replicas < 0:
            raise ConfigError("must not be negative", "replicas")
        for workload in manifests.workloads:
            if workload.get("kind") == "Deployment":
                workload.setdefault("spec", {})["replicas"] = options.replicas
    return manifests, shown


# --- the scenario ---------------------------------------------------------------------------


def _health_text(values: Mapping[str, tuple[Health, str]], device: str) -> str:
    found = values.get(device)
    if found is None:
        return ""
    health, message = found
    return health.name.title() + (f" ({message})" if message and health != Health.HEALTHY
                                  else "")


async def _pod_views(cluster: Cluster, *, with_health: bool) -> list[PodView]:
    views = []
    for pod in cluster.objects.list("pods"):
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        running = cluster.running.get(key)
        view = PodView(meta["name"], str((pod.get("spec") or {}).get("nodeName") or ""),
                       str((pod.get("status") or {}).get("phase") or "Pending"))
        failure = cluster.failed.get(key)
        if failure is not None:
            view.reason = failure.reason
        if running is not None:
            await _fill_interface(cluster, running, view, with_health=with_health)
        views.append(view)
    return views


async def _fill_interface(cluster: Cluster, pod: RunningPod, view: PodView, *,
                          with_health: bool) -> None:
    for ref in pod.claims:
        claim = cluster.objects.get("resourceclaims", ref.name, ref.namespace) or {}
        for entry in (claim.get("status") or {}).get("devices") or []:
            ifname = str((entry.get("networkData") or {}).get("interfaceName") or "")
            if entry.get("driver") != DRIVER or not ifname:
                continue
            view.interface = ifname
            found = await cluster.interface(pod, ifname)
            if found is not None:
                view.address, view.mac = found
                view.kind, view.up = await cluster.link_kind(pod, ifname)
            if with_health:
                view.health = _health_text(cluster.device_health(pod.node), str(entry["device"]))
            return


def _admin_access(template: Mapping[str, Any]) -> bool:
    requests = (((template.get("spec") or {}).get("spec") or {}).get("devices") or {}).get(
        "requests") or []
    return any((r.get("exactly") or r).get("adminAccess") for r in requests)


def _check_claims(cluster: Cluster, result: DemoResult, started: Sequence[RunningPod]) -> None:
    for pod in started:
        for ref in pod.claims:
            result.claims_total += 1
            claim = cluster.objects.get("resourceclaims", ref.name, ref.namespace) or {}
            entries = [d for d in (claim.get("status") or {}).get("devices") or []
                       if d.get("driver") == DRIVER]
            if entries and all(ready_status(d) == "True" and (d.get("networkData") or {}).get("ips")
                               for d in entries):
                result.claims_ready += 1


def _record_pods(result: DemoResult, views: list[PodView], scale: ScaleResult) -> None:
    result.pods = views
    result.by_node = {}
    for view in views:
        if view.node:
            result.by_node[view.node] = result.by_node.get(view.node, 0) + 1
    for key, outcome in scale.report.unschedulable.items():
        reasons = [outcome.message]
        for node, attempts in outcome.per_node.items():
            for attempt in attempts:
                if attempt.ok:
                    continue
                reasons.append(f"node {node}: cannot allocate: {attempt.failure}")
                reasons += [f"  device {n.device}: {n.reason}" for n in attempt.notes
                            if not n.selected]
        result.pending[key.split("/", 1)[1]] = "\n".join(reasons)


async def run_demo(options: DemoOptions, out: TextIO, *,
                   keep_running: Callable[[], Awaitable[None]] | None = None,
                   interrupted: asyncio.Event | None = None) -> DemoResult:
    """The whole demo; returns the verdicts. ``keep_running`` is awaited with ``--keep``
    (default: until cancelled, e.g. by Ctrl-C); the scale-down and checks run after it.
    Setting ``interrupted`` (and cancelling the task) stops the run: everything is removed
    and CancelledError propagates."""
    return await _Run(options, Printer(out), keep_running, interrupted).run()


class _Run:
    def __init__(self, options: DemoOptions, printer: Printer,
                 keep_running: Callable[[], Awaitable[None]] | None,
                 interrupted: asyncio.Event | None) -> None:
        self.options = options
        self.p = printer
        self.keep_running = keep_running
        self.manifests, self.shown = select_manifests(options)
        deployments = [w for w in self.manifests.workloads if w.get("kind") == "Deployment"]
        self.replicas = {str(d["metadata"]["name"]): int((d.get("spec") or {}).get("replicas", 1))
                         for d in deployments}
        self.bare_pods = len(self.manifests.workloads) - len(deployments)
        self.result = DemoResult()
        self.cluster = Cluster(nodes=options.nodes, api_version=options.api_version,
                               driver_args=options.driver_args, interrupted=interrupted)

    async def run(self) -> DemoResult:
        began = time.monotonic()
        layout = "; ".join(f"{n.name}: {' '.join(n.interfaces)}" for n in self.options.nodes)
        self.p.line(f"cnidra demo: embedded cluster, resource.k8s.io/{self.options.api_version}"
                    f", {len(self.options.nodes)} nodes ({layout})")
        self.p.line(f"manifests: {', '.join(self.shown)}")
        try:
            async with self.cluster:
                self.result.timings["start"] = time.monotonic() - began
                await self._up()
                self.cluster.check_interrupted()
                await self._show()
                self.cluster.check_interrupted()
                if self.options.keep:
                    await _keep(self.cluster, self.p, self.keep_running)
                await self._down()
        except CnidraError as exc:
            if self.cluster.saved_logs is not None:
                raise DemoError(f"{exc} (driver logs kept in {self.cluster.saved_logs})") from exc
            raise
        result = self.result
        result.residue = await self.cluster.residue()
        result.timings["total"] = time.monotonic() - began
        _verdicts(result, sum(self.replicas.values()) + self.bare_pods)
        self.p.line()
        verdict = "OK" if result.ok else "FAILED: " + "; ".join(result.problems)
        removed = "everything removed" if not result.residue else "NOT everything removed"
        self.p.line(f"{summary_line(result)} — {verdict} ({result.timings['total']:.1f}s, "
                    f"{removed})")
        return result

    async def _up(self) -> None:
        cluster, p, result = self.cluster, self.p, self.result
        p.line(f"API server, network and {len(cluster.nodes)} real `cnidra driver` processes up "
               f"in {result.timings['start']:.1f}s (drivers registered with their kubelet and "
               "runtime, slices published)")
        if any(_admin_access(t) for t in self.manifests.of_kind("ResourceClaimTemplate")):
            for namespace in cluster.admin_namespaces:
                p.section(f"kubectl label namespace {namespace} {ADMIN_ACCESS_LABEL}=true",
                          "the templates ask for adminAccess")
        cluster.apply(self.manifests)
        p.section("kubectl get resourceslices")
        p.line(slices_table(cluster.objects.list("resourceslices")))
        t0 = time.monotonic()
        retried_before = len(cluster.retries)
        scaled = ScaleResult()
        if self.bare_pods:
            scaled.started, scaled.failed, scaled.report = await cluster.reconcile()
        for name, replicas in self.replicas.items():
            more = await cluster.scale(name, replicas)
            scaled.started += more.started
            scaled.failed += more.failed
            scaled.report.scheduled.update(more.report.scheduled)
            scaled.report.unschedulable.update(more.report.unschedulable)
        result.timings["scale_up"] = time.monotonic() - t0
        result.retried = cluster.retries[retried_before:]
        total = sum(self.replicas.values()) + self.bare_pods
        for name, replicas in self.replicas.items():
            p.section(f"kubectl scale deployment {name} --replicas={replicas}")
        if self.bare_pods:
            p.section("kubectl create -f <manifests>", f"{self.bare_pods} bare pods")
        p.line(f"{total} pods created: {len(scaled.report.scheduled)} scheduled, "
               f"{len(scaled.started)} running with their claims Ready in "
               f"{result.timings['scale_up']:.1f}s")
        _check_claims(cluster, result, scaled.started)
        p.section("kubectl get resourceclaims")
        p.line(claims_table(cluster.objects.list("resourceclaims")))
        views = await _pod_views(cluster, with_health=False)
        _record_pods(result, views, scaled)
        p.section("kubectl get pods -o wide",
                  "address and MAC: ip -n <pod netns> -j addr show <interface>")
        p.line(pods_table(views))
        for name, reason in sorted(result.pending.items()):
            p.line(f"{name}: Pending (Unschedulable): " + reason.replace("\n", "\n  "))
        for line in retries_lines(result.retried):
            p.line(line)
        for failure in scaled.failed:
            p.line(f"{failure.pod}: Failed on {failure.node}: {failure.reason}")

    async def _show(self) -> None:
        cluster, p, result = self.cluster, self.p, self.result
        running = sorted(cluster.running.values(), key=lambda r: r.name)
        if running:
            claim = next((cluster.objects.get("resourceclaims", r.name, r.namespace)
                          for r in running[0].claims), None)
            if claim is not None:
                p.section(f"kubectl get resourceclaim {claim['metadata']['name']} "
                          "-o jsonpath='{.status.devices}' | yq -P")
                p.line(status_devices_yaml(claim))
        with_address = sorted((v for v in result.pods if v.address), key=lambda v: v.name)
        if len(with_address) >= 2:
            src, dst = with_address[0], with_address[1]
            target = dst.address.split("/")[0]
            source = next(r for r in running if r.name == src.name)
            p.section(f"kubectl exec {src.name} -- ping -c 1 -W 2 {target}",
                      f"ip netns exec {source.netns} …, over {src.interface}")
            result.ping = await cluster.ping(source, target)
            p.line(("OK: " if result.ping[0] else "FAILED: ") + result.ping[1])

    async def _down(self) -> None:
        cluster, p, result = self.cluster, self.p, self.result
        t0 = time.monotonic()
        stopped: list[str] = []
        for name in self.replicas:
            stopped += (await cluster.scale(name, 0)).stopped
        stopped += await cluster.delete_pods(cluster.objects.list("pods"))
        result.timings["scale_down"] = time.monotonic() - t0
        result.leftovers = await cluster.leftovers()
        for name in self.replicas:
            p.section(f"kubectl scale deployment {name} --replicas=0")
        if self.bare_pods:
            p.section("kubectl delete pods --all")
        p.line(f"{len(stopped)} pods deleted in {result.timings['scale_down']:.1f}s "
               "(NRI stop, unprepare, NRI remove, netns removed, pod and claim deleted)")
        p.line(leftovers_line(result.leftovers))


def _verdicts(result: DemoResult, replicas: int) -> None:
    running = [v for v in result.pods if v.phase == "Running"]
    if len(running) + len(result.pending) < replicas:
        result.problems.append(f"{replicas - len(running) - len(result.pending)} pods failed")
    if len(set(result.addresses)) != len(running):
        result.problems.append(f"{len(running)} running pods but "
                               f"{len(set(result.addresses))} distinct addresses")
    down = [v.name for v in running if not v.up]
    if down:
        result.problems.append(f"{len(down)} pods' interface not UP")
    if result.claims_ready != result.claims_total:
        result.problems.append(f"{result.claims_total - result.claims_ready} claims not Ready")
    if result.pending:
        result.problems.append(f"{len(result.pending)} pods unschedulable")
    if result.ping is not None and not result.ping[0]:
        result.problems.append("ping between pods failed")
    if result.leftovers is not None and not result.leftovers.clean:
        result.problems.append("leftovers after scale-down")
    if result.residue:
        result.problems.append("left after exit: " + ", ".join(result.residue))


async def _keep(cluster: Cluster, p: Printer,
                keep_running: Callable[[], Awaitable[None]] | None) -> None:
    p.section("kubectl get pods -o wide", "with the device health the kubelet received")
    p.line(pods_table(await _pod_views(cluster, with_health=True), health=True))
    p.line()
    p.line("Running until Ctrl-C. Look around:")
    hints = [(f"ip netns | grep {cluster.fabric.run_id}", "node and pod namespaces")]
    some = next(iter(sorted(cluster.running.values(), key=lambda r: r.name)), None)
    if some is not None:
        hints.append((f"ip -n {some.netns} addr", f"inside pod {some.name}"))
    for node in cluster.nodes.values():
        hints.append((f"ip -n {node.netns} link", f"node {node.name}"))
        hints.append((f"less {node.paths.log}", f"the driver of {node.name}"))
    hints.append((f"cat {cluster.api.kubeconfig}",
                  f"kubeconfig of the API server stand-in at {cluster.api.url}"))
    width = max(len(cmd) for cmd, _ in hints)
    for cmd, what in hints:
        p.line(f"  {cmd.ljust(width)}   # {what}")
    task = asyncio.current_task()
    try:
        await (keep_running() if keep_running is not None else asyncio.Event().wait())
    except asyncio.CancelledError:
        if task is None or task.uncancel() > 0:
            raise
    p.line()
    p.line("Stopping: scaling down and cleaning up.")
