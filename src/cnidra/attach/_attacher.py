"""Per-pod orchestration of CNI ADD/DEL for prepared claims (flows 3 and 4).

RunPodSandbox: under the pod's lock, ADD every planned interface of every prepared claim of the
pod in the sandbox's network namespace, in plan order; record all attachments in the checkpoint
with one write; hand the claims' ``status.devices`` to the status sink (written off the hook
path). If any interface fails, the ones already added are DELeted (reverse order), the claim gets
a ``Ready=False`` status and a Warning event, and the hook fails with the CNI error, so the
sandbox fails cleanly and nothing is left behind. A repeated RunPodSandbox for the same sandbox
only adds what is missing (normally nothing).

Stop/RemovePodSandbox: DEL every attachment of the sandbox with the prepared config and the cached
previous result (an empty netns when it is gone), forget it, and clear our ``status.devices``
entries. Remove also DELs CNI cache entries of the sandbox that never reached the checkpoint (a
restart in the middle of an ADD).

Synchronize (the runtime's list of live sandboxes, on every (re)connect) reconciles both ways:
everything recorded or cached for sandboxes that no longer exist is DELeted as above; and every
live sandbox whose pod has planned interfaces that are not recorded for it (the pod started
while the driver was down, or the driver died in the middle of an ADD) is caught up: under the
pod's lock, first the unrecorded CNI cache entries of the sandbox and then the missing interfaces
themselves are DELeted (whatever a killed ADD left: link, IPAM lease, cache entry), then they are
ADDed exactly as RunPodSandbox does (rollback, status, event). Pods are caught up in parallel,
at most ``catch_up_concurrency`` at a time; one pod's failure is logged and reported on its
claim, never raised. A sandbox stopped or removed before its turn is skipped.

The hook has 2 s: everything slow (API reads, config validation) happened in Prepare.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from cnidra.attach._netns import netns_exists
from cnidra.attach._ports import CNI, EventSink, PreparedState, Sandbox, StatusSink
from cnidra.attach._status import failed_entry, ready_entry
from cnidra.attach._uncancellable import uncancellable
from cnidra.claims import check_pod_interfaces
from cnidra.cni import RuntimeConf, parse_conflist
from cnidra.errors import CnidraError
from cnidra.model.plan import Attachment, ClaimPlan, PlannedInterface

log = logging.getLogger(__name__)


class AttachError(CnidraError):
    """Attaching a pod's interfaces failed; the message is what the pod's events will show."""


def cni_args(sandbox: Sandbox) -> tuple[tuple[str, str], ...]:
    return (
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", sandbox.pod_namespace),
        ("K8S_POD_NAME", sandbox.pod_name),
        ("K8S_POD_INFRA_CONTAINER_ID", sandbox.id),
        ("K8S_POD_UID", sandbox.pod_uid),
    )


def _planned(plans: Sequence[ClaimPlan]) -> Iterator[tuple[ClaimPlan, PlannedInterface]]:
    for plan in plans:
        for iface in plan.interfaces:
            yield plan, iface


class Attacher:
    """Attaches and detaches the interfaces of prepared claims, one pod at a time."""

    def __init__(
        self, *, driver: str, state: PreparedState, cni: CNI, status: StatusSink,
        events: EventSink, clock: Callable[[], float] = time.time,
        catch_up_concurrency: int = 4,
    ) -> None:
        if catch_up_concurrency < 1:
            raise ValueError("catch_up_concurrency must be at least 1")
        self._driver = driver
        self._state = state
        self._cni = cni
        self._status = status
        self._events = events
        self._clock = clock
        self._catch_up_concurrency = catch_up_concurrency
        self._locks: dict[str, asyncio.Lock] = {}
        self._behind: set[str] = set()  # sandboxes a Synchronize is catching up
        self._waiters: dict[str, int] = {}

    @asynccontextmanager
    async def _pod_lock(self, pod_uid: str) -> Any:
        lock = self._locks.setdefault(pod_uid, asyncio.Lock())
        self._waiters[pod_uid] = self._waiters.get(pod_uid, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiters[pod_uid] -= 1
            if not self._waiters[pod_uid]:
                del self._waiters[pod_uid]
                del self._locks[pod_uid]

    # --- RunPodSandbox ----------------------------------------------------------------------

    async def run_pod_sandbox(self, sandbox: Sandbox) -> list[Attachment]:
        """Attach everything planned for the pod; returns the attachments made now."""
        if not sandbox.netns:
            log.debug("sandbox %s has no network namespace (host network): skipped", sandbox.id)
            return []
        async with self._pod_lock(sandbox.pod_uid):
            await self._refresh()
            return await self._attach_missing(sandbox, clean_first=False)

    async def _refresh(self) -> None:
        """Adopt what another driver instance prepared (rolling update: the kubelet may call
        either instance); on a read error answer from memory, which is never older than this
        instance's own last change."""
        try:
            await self._state.refresh()
        except CnidraError as exc:
            log.error("cannot re-read the prepared state (answering from memory): %s", exc)

    def _todo(self, sandbox: Sandbox) -> list[tuple[ClaimPlan, PlannedInterface]]:
        """The planned interfaces of the sandbox's pod that are not recorded for it."""
        plans = self._state.plans_for_pod(sandbox.pod_uid)
        if not plans:
            return []
        done = {(a.claim_uid, a.if_name) for a in self._state.attachments_for_sandbox(
            sandbox.id)}
        return [(p, i) for p, i in _planned(plans) if (p.claim_uid, i.if_name) not in done]

    async def _attach_missing(self, sandbox: Sandbox, *, clean_first: bool) -> list[Attachment]:
        """ADD what is planned and not recorded (the caller holds the pod's lock). With
        ``clean_first`` (catch-up after a restart), DEL whatever an unrecorded earlier ADD may
        have left before adding."""
        todo = self._todo(sandbox)
        if not todo:
            return []
        try:
            check_pod_interfaces(self._state.plans_for_pod(sandbox.pod_uid))
        except CnidraError as exc:
            if clean_first:
                self._report_all_failed(todo, str(exc))
            raise
        if clean_first:
            await uncancellable(self._clean_leftovers(sandbox, todo))
        tried: list[tuple[ClaimPlan, PlannedInterface]] = []
        try:
            added = await self._add_all(sandbox, todo, tried)
            await uncancellable(self._state.record_attachments(added))
        except asyncio.CancelledError:
            # The hook missed its deadline (or the driver stops): leave nothing behind, not
            # even when cancelled again while undoing. DEL every interface we started and
            # forget whatever the checkpoint write may have recorded meanwhile.
            log.warning("attach of sandbox %s cancelled: rolling back %d interface(s)",
                        sandbox.id, len(tried))
            await uncancellable(self._undo(sandbox, tried))
            raise
        except AttachError:
            raise
        except CnidraError as exc:
            await uncancellable(self._rollback(sandbox, tried))
            self._report_all_failed(todo, f"cannot record the attachment: {exc}")
            raise AttachError(f"cannot record the attachments: {exc}") from exc
        for plan in {p.claim_uid: p for p, _ in todo}.values():
            self._report_ready(plan, sandbox.id)
        return added

    async def _clean_leftovers(
        self, sandbox: Sandbox, todo: Sequence[tuple[ClaimPlan, PlannedInterface]]
    ) -> None:
        """DEL the sandbox's unrecorded cache entries, then each missing interface with its
        planned config (a killed ADD may have made the link and the lease before it could
        write the cache). DEL is idempotent: for a pod that never saw us, nothing happens."""
        recorded = {(a.sandbox_id, a.if_name) for a in self._state.attachments_for_sandbox(
            sandbox.id)}
        cleaned = await self._delete_unrecorded({sandbox.id}, keep=recorded,
                                                netns=sandbox.netns)
        if cleaned:
            log.info("sandbox %s: DELeted %d unrecorded CNI cache entr%s before catching up",
                     sandbox.id, cleaned, "y" if cleaned == 1 else "ies")
        await self._rollback(sandbox, todo)

    async def _add_all(
        self, sandbox: Sandbox, todo: Sequence[tuple[ClaimPlan, PlannedInterface]],
        tried: list[tuple[ClaimPlan, PlannedInterface]],
    ) -> list[Attachment]:
        """ADD each planned interface in order; ``tried`` grows before each ADD starts, so a
        caller that is cancelled knows what to DEL. A failed ADD rolls back everything tried
        (itself included) and raises ``AttachError``."""
        added: list[Attachment] = []
        netns = sandbox.netns or ""
        for plan, iface in todo:
            rt = RuntimeConf(sandbox.id, netns, iface.if_name, cni_args(sandbox))
            tried.append((plan, iface))
            try:
                result = await self._cni.add(parse_conflist(iface.conflist), rt)
            except CnidraError as exc:
                await uncancellable(self._rollback(sandbox, tried))
                message = (f"claim {plan.key}: {iface.if_name} on device {iface.device}: "
                           f"{exc}")
                self._report_failed(plan, iface, str(exc))
                raise AttachError(message) from exc
            added.append(Attachment(
                claim_uid=plan.claim_uid, if_name=iface.if_name, pod_uid=sandbox.pod_uid,
                sandbox_id=sandbox.id, netns=netns, network_name=iface.network_name,
                cni_result=result.to_dict(), since=self._clock(),
            ))
        return added

    async def _undo(
        self, sandbox: Sandbox, tried: Sequence[tuple[ClaimPlan, PlannedInterface]]
    ) -> None:
        await self._rollback(sandbox, tried)
        try:
            await self._state.remove_attachments(
                (plan.claim_uid, iface.if_name, sandbox.id) for plan, iface in tried)
        except CnidraError as exc:
            log.error("cannot forget the attachments of sandbox %s: %s", sandbox.id, exc)

    async def _rollback(
        self, sandbox: Sandbox, tried: Sequence[tuple[ClaimPlan, PlannedInterface]]
    ) -> None:
        """DEL (reverse order) what an unfinished attach may have left, including the one that
        failed half-way: DEL is idempotent and cleans a partial ADD's IPAM lease."""
        for _, iface in reversed(tried):
            rt = RuntimeConf(sandbox.id, sandbox.netns or "", iface.if_name, cni_args(sandbox))
            try:
                await asyncio.shield(self._cni.delete(parse_conflist(iface.conflist), rt))
            except CnidraError as exc:
                log.error("rollback of %s in sandbox %s failed: %s", iface.if_name, sandbox.id,
                          exc)

    # --- Stop/RemovePodSandbox --------------------------------------------------------------

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None:
        async with self._pod_lock(sandbox.pod_uid):
            self._behind.discard(sandbox.id)  # a pending catch-up must not attach it now
            await self._refresh()
            await self._detach(sandbox.id, sandbox.netns, self._state.attachments_for_sandbox(
                sandbox.id))

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None:
        async with self._pod_lock(sandbox.pod_uid):
            self._behind.discard(sandbox.id)
            await self._refresh()
            await self._detach(sandbox.id, None, self._state.attachments_for_sandbox(
                sandbox.id))
            await self._delete_unrecorded({sandbox.id})

    async def synchronize(self, live_sandboxes: Collection[Sandbox]) -> int:
        """Reconcile with the runtime's live sandboxes: detach everything of sandboxes that no
        longer exist, and attach what is planned but missing in live ones (see the module
        docstring). Returns how many attachments of gone sandboxes were removed plus how many
        were made for live ones (leftovers DELeted before a catch-up are not counted). Raises
        ``AttachError`` (after the catch-up) only when a clean-up DEL failed."""
        await self._refresh()
        live_ids = {s.id for s in live_sandboxes}
        stale: dict[str, list[Attachment]] = {}
        for att in self._state.all_attachments():
            if att.sandbox_id not in live_ids:
                stale.setdefault(att.sandbox_id, []).append(att)
        changed = 0
        errors: list[str] = []
        for sandbox_id, atts in stale.items():
            async with self._pod_lock(atts[0].pod_uid):
                try:
                    changed += await self._detach(sandbox_id, None, atts)
                except AttachError as exc:
                    errors.append(str(exc))
        recorded = {a.sandbox_id for a in self._state.all_attachments()}
        cached = {e.container_id for e in await self._cni.cached_attachments()}
        changed += await self._delete_unrecorded(cached - live_ids - recorded)
        changed += await self._catch_up(live_sandboxes)
        if errors:
            raise AttachError("; ".join(errors))
        return changed

    async def _catch_up(self, live_sandboxes: Collection[Sandbox]) -> int:
        behind = [s for s in live_sandboxes if s.netns and s.pod_uid and self._todo(s)]
        if not behind:
            return 0
        log.info("catching up %d live sandbox(es) with unattached interfaces", len(behind))
        self._behind.update(s.id for s in behind)
        limit = asyncio.Semaphore(self._catch_up_concurrency)
        try:
            counts = await asyncio.gather(*(self._catch_up_one(s, limit) for s in behind))
        finally:
            self._behind.difference_update(s.id for s in behind)
        return sum(counts)

    async def _catch_up_one(self, sandbox: Sandbox, limit: asyncio.Semaphore) -> int:
        what = f"pod {sandbox.pod_namespace}/{sandbox.pod_name} (sandbox {sandbox.id[:13]})"
        async with limit:
            try:
                async with self._pod_lock(sandbox.pod_uid):
                    if sandbox.id not in self._behind:  # stopped or removed meanwhile
                        log.info("%s ended before its catch-up: skipped", what)
                        return 0
                    added = await self._attach_missing(sandbox, clean_first=True)
            except CnidraError as exc:
                log.error("catch-up of %s failed: %s", what, exc)
                return 0
            except Exception:  # a bug must not take the other pods' catch-up down
                log.exception("catch-up of %s failed unexpectedly", what)
                return 0
        if added:
            log.info("caught up %s: attached %s", what, ", ".join(a.if_name for a in added))
        return len(added)

    async def _detach(
        self, sandbox_id: str, netns: str | None, attachments: Sequence[Attachment]
    ) -> int:
        if not attachments:
            return 0
        errors: list[str] = []
        deleted: list[Attachment] = []
        for att in reversed(attachments):
            plan = self._state.get(att.claim_uid)
            iface = plan.interface(att.if_name) if plan else None
            try:
                if iface is None:  # the plan is gone: the CNI cache still knows the config
                    await self._cni.delete_from_cache(sandbox_id, att.if_name, att.network_name,
                                                      netns)
                else:
                    path = att.netns if netns is None else netns
                    rt = await self._del_conf(sandbox_id, att, path)
                    await self._cni.delete(parse_conflist(iface.conflist), rt)
                deleted.append(att)
            except CnidraError as exc:
                errors.append(f"{att.if_name} (claim {att.claim_uid}): {exc}")
        await self._state.remove_attachments(a.key for a in deleted)
        for uid in {a.claim_uid for a in deleted}:
            plan = self._state.get(uid)
            if plan is not None and not any(
                a.claim_uid == uid for a in self._state.all_attachments()
            ):
                self._status.submit(plan.namespace, plan.name, plan.claim_uid, [])
        if errors:
            raise AttachError(f"sandbox {sandbox_id}: DEL failed for " + "; ".join(errors))
        return len(deleted)

    async def _del_conf(self, sandbox_id: str, att: Attachment, netns: str) -> RuntimeConf:
        exists = await asyncio.to_thread(netns_exists, netns)
        cached = await self._cni.get_cached(att.network_name, sandbox_id, att.if_name)
        args = cached.cni_args if cached is not None else ()
        return RuntimeConf(sandbox_id, netns if exists else "", att.if_name, args)

    async def _delete_unrecorded(
        self, sandbox_ids: Collection[str], *, keep: Collection[tuple[str, str]] = (),
        netns: str | None = None,
    ) -> int:
        """DEL (from the cache) every cache entry of ``sandbox_ids`` whose (container id,
        ifname) is not in ``keep``."""
        count = 0
        for entry in await self._cni.cached_attachments():
            if entry.container_id in sandbox_ids and (
                    entry.container_id, entry.ifname) not in keep:
                try:
                    if await self._cni.delete_from_cache(
                        entry.container_id, entry.ifname, entry.network_name, netns
                    ):
                        count += 1
                except CnidraError as exc:
                    log.error("DEL of unrecorded %s/%s failed: %s", entry.container_id,
                              entry.ifname, exc)
        return count

    # --- status -----------------------------------------------------------------------------

    def _report_ready(self, plan: ClaimPlan, sandbox_id: str) -> None:
        results = {a.if_name: a.cni_result for a in self._state.attachments_for_sandbox(
            sandbox_id) if a.claim_uid == plan.claim_uid}
        devices = [
            ready_entry(driver=i.driver, pool=i.pool, device=i.device, share_id=i.share_id,
                        if_name=i.if_name, result=results.get(i.if_name, {}))
            for i in plan.interfaces
        ]
        self._status.submit(plan.namespace, plan.name, plan.claim_uid, devices)

    def _report_all_failed(
        self, todo: Sequence[tuple[ClaimPlan, PlannedInterface]], error: str
    ) -> None:
        first = {p.claim_uid: (p, i) for p, i in reversed(todo)}
        for plan, iface in first.values():
            self._report_failed(plan, iface, error)

    def _report_failed(self, plan: ClaimPlan, iface: PlannedInterface, error: str) -> None:
        entry = failed_entry(driver=iface.driver, pool=iface.pool, device=iface.device,
                             share_id=iface.share_id, if_name=iface.if_name, error=error)
        self._status.submit(plan.namespace, plan.name, plan.claim_uid, [entry])
        self._events.claim_event(
            plan.namespace, plan.name, plan.claim_uid, reason="NetworkAttachFailed",
            message=f"{iface.if_name}: {error}", warning=True,
        )
