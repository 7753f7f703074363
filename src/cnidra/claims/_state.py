"""``ClaimState``: prepare/unprepare for the kubelet plugin and the prepared-claim queries attach
uses, over the checkpoint (the single source of truth; memory is a cache of it).

Prepare has two phases, so that a caller can serialize only the second one (the kubelet plugin
does, as the Go helper: reads before the lock). :meth:`ClaimState.fetch` reads every claim (and
the DeviceClasses its configs come from) from the API server in parallel and touches no state;
concurrent calls read concurrently. :meth:`ClaimState.apply_prepare` then, under the state's
lock: reuses the stored plan when the allocation is unchanged (only the pod UIDs are refreshed),
else computes it, and writes the checkpoint once for the whole call. :meth:`ClaimState.prepare`
is both in one. Each claim gets its own answer; one bad claim never fails the call.

Unprepare works from the checkpoint alone (the claim may be gone from the API server) and is
idempotent. A claim that still has attachments is **refused** with an error (the kubelet
retries): the sandbox's CNI DEL (attach) removes them first, so unprepare never leaves an
interface behind whose config we would have forgotten.

Several instances over one directory (the kubelet plugin's rolling update): every state change
(apply_prepare, unprepare, record/remove attachments) holds this instance's lock and the
directory's ``flock``, reloads the checkpoint when another instance replaced it (its stamp
differs), then acts, then writes (``_shared_file`` has those mechanics). So no change is made on
a stale cache and none is lost. The synchronous queries (``get``, ``plans_for_pod``, ...) answer
from memory as of this instance's last read or write (for attach: the NRI-connected instance,
whose own changes are always current); call :meth:`ClaimState.refresh` first to see another
instance's changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from cnidra.claims._checkpoint import Checkpoint, Stamp
from cnidra.claims._claim import FROM_CLASS, canonical_json, view_claim
from cnidra.claims._errors import ClaimConfigError
from cnidra.claims._plan import compute_plan
from cnidra.claims._policy import AdminPolicy, DeviceIfNameResolver, identity_resolver
from cnidra.claims._records import PreparedClaim
from cnidra.claims._shared_file import SharedCheckpoint
from cnidra.errors import CheckpointError, CnidraError, ConfigError, KubeAPIError, NotFoundError
from cnidra.model.claims import ClaimRef, PrepareOutcome
from cnidra.model.plan import Attachment, ClaimPlan

log = logging.getLogger(__name__)


class ClaimReader(Protocol):
    """What prepare needs from the API server (the kube adapter provides it)."""

    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any]:
        """The ResourceClaim object; raises ``NotFoundError`` when it does not exist."""

    async def get_device_class(self, name: str) -> Mapping[str, Any]:
        """The DeviceClass object; raises ``NotFoundError`` when it does not exist."""


@dataclass(frozen=True, slots=True)
class _Read:
    ref: ClaimRef
    claim: Mapping[str, Any] | None = None
    classes: Mapping[str, Mapping[str, Any]] | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Fetched:
    """What :meth:`ClaimState.fetch` read for one call; hand it to
    :meth:`ClaimState.apply_prepare`. ``refs`` are the call's claims (one per UID), ``started``
    is ``time.monotonic()`` when the fetch began."""

    refs: tuple[ClaimRef, ...]
    started: float
    reads: tuple[_Read, ...] = ()


class ClaimState:
    """Prepared claims by UID, indexed by pod UID and sandbox ID. Create with :meth:`open`."""

    def __init__(
        self, checkpoint: Checkpoint, claims: Mapping[str, PreparedClaim], reader: ClaimReader,
        *, driver: str, policy: AdminPolicy | None = None,
        device_if_name: DeviceIfNameResolver = identity_resolver, read_concurrency: int = 16,
        stamp: Stamp = None, lock_timeout: float = 30.0,
    ) -> None:
        """``claims`` are the checkpoint's content as of ``stamp`` (``load_stamped``); with the
        default ``None`` the first state change reloads the file if there is one. A state change
        waits at most ``lock_timeout`` for another instance's (then ``CheckpointError``)."""
        self._reader = reader
        self._driver = driver
        self._policy = policy or AdminPolicy()
        self._resolve = device_if_name
        self._lock = asyncio.Lock()
        self._reads = asyncio.Semaphore(read_concurrency)
        self._claims: dict[str, PreparedClaim] = {}
        self._by_pod: dict[str, tuple[str, ...]] = {}
        self._file = SharedCheckpoint(checkpoint, stamp, lock=self._lock, adopt=self._set,
                                      lock_timeout=lock_timeout)
        self._set(dict(claims), stamp)

    @classmethod
    async def open(
        cls, directory: str, reader: ClaimReader, *, driver: str, policy: AdminPolicy | None = None,
        device_if_name: DeviceIfNameResolver = identity_resolver,
    ) -> ClaimState:
        """Load the checkpoint in ``directory`` (``CheckpointError`` if it is unreadable)."""
        checkpoint = Checkpoint(directory)
        claims, stamp = await asyncio.to_thread(checkpoint.load_stamped, clean=True)
        return cls(checkpoint, claims, reader, driver=driver, policy=policy,
                   device_if_name=device_if_name, stamp=stamp)

    # --- kubelet -------------------------------------------------------------------------

    async def prepare(self, claims: Sequence[ClaimRef]) -> dict[str, PrepareOutcome]:
        """Prepare each claim; the answer has one outcome per claim UID. Same as
        :meth:`apply_prepare` of :meth:`fetch` (nothing held in between)."""
        return await self.apply_prepare(await self.fetch(claims))

    async def fetch(self, claims: Sequence[ClaimRef]) -> Fetched:
        """Read the claims and their DeviceClasses from the API server, in parallel (at most
        ``read_concurrency`` at once per instance). Touches no state and takes no lock; a read
        problem becomes that claim's error in :meth:`apply_prepare`, never an exception."""
        started = time.monotonic()
        refs = tuple({ref.uid: ref for ref in claims}.values())
        reads = await asyncio.gather(*(self._fetch(ref) for ref in refs))
        return Fetched(refs, started, tuple(reads))

    async def apply_prepare(self, fetched: Fetched) -> dict[str, PrepareOutcome]:
        """The state phase of prepare, under the lock: reload the checkpoint if another instance
        changed it, reuse or compute each plan, write the checkpoint once."""
        refs = {ref.uid: ref for ref in fetched.refs}
        try:
            async with self._file.exclusive():
                return await self._apply_prepare(fetched, refs)
        except CheckpointError as exc:  # the lock or the reload; the write is per claim
            log.error("prepare: %s", exc)
            return {uid: PrepareOutcome(error=f"claim {_key(ref)}: cannot use the "
                                        f"prepared claims of this node: {exc}")
                    for uid, ref in refs.items()}

    async def _apply_prepare(
        self, fetched: Fetched, refs: Mapping[str, ClaimRef]
    ) -> dict[str, PrepareOutcome]:
        updated = dict(self._claims)
        outcomes: dict[str, PrepareOutcome] = {}
        changed: list[str] = []
        for item in fetched.reads:
            outcome, record = self._prepare_one(item, updated.get(item.ref.uid))
            outcomes[item.ref.uid] = outcome
            if record is not None:
                updated[item.ref.uid] = record
                changed.append(item.ref.uid)
        if changed:
            try:
                await self._write(updated)
            except CheckpointError as exc:
                log.exception("prepare: checkpoint write failed")
                for uid in changed:
                    if outcomes[uid].ok:
                        outcomes[uid] = PrepareOutcome(
                            error=f"claim {_key(refs[uid])}: cannot record the "
                            f"prepared claim on this node: {exc}"
                        )
        return outcomes

    async def unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]:
        """Forget each claim; ``uid → ""`` on success or a message the kubelet will retry on."""
        try:
            async with self._file.exclusive():
                return await self._unprepare(claims)
        except CheckpointError as exc:  # the lock or the reload; the write is per claim
            log.error("unprepare: %s", exc)
            return {ref.uid: f"claim {_key(ref)}: {exc}" for ref in claims}

    async def _unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]:
        updated = dict(self._claims)
        answers: dict[str, str] = {}
        removed: list[str] = []
        for ref in claims:
            record = updated.get(ref.uid)
            answers[ref.uid] = ""
            if record is None:
                continue
            if record.attachments:
                sandboxes = sorted({a.sandbox_id[:12] for a in record.attachments})
                answers[ref.uid] = (
                    f"claim {_key(ref)}: {len(record.attachments)} interface(s) still "
                    f"attached in pod sandbox(es) {', '.join(sandboxes)}; they are removed "
                    "by the sandbox's CNI DEL first (retry later)"
                )
                continue
            del updated[ref.uid]
            removed.append(ref.uid)
        if removed:
            try:
                await self._write(updated)
            except CheckpointError as exc:
                log.exception("unprepare: checkpoint write failed")
                for ref in claims:
                    if ref.uid in removed:
                        answers[ref.uid] = f"claim {_key(ref)}: {exc}"
        return answers

    async def refresh(self) -> bool:
        """Reload the checkpoint if another instance replaced it since this one last read or
        wrote it; True when it did. ``CheckpointError`` when the file cannot be read.

        Cheap when nothing changed (one ``stat``, no lock), so attach calls it before every
        pod hook: with rolling update, the kubelet may have prepared the pod's claims through
        the other instance."""
        return await self._file.refresh()

    # --- attach --------------------------------------------------------------------------

    def get(self, claim_uid: str) -> ClaimPlan | None:
        """The plan of a prepared claim."""
        record = self._claims.get(claim_uid)
        return record.plan if record else None

    def plans_for_pod(self, pod_uid: str) -> list[ClaimPlan]:
        """Plans of the prepared claims reserved for ``pod_uid``, ordered by namespace/name."""
        plans = [self._claims[uid].plan for uid in self._by_pod.get(pod_uid, ())]
        return sorted(plans, key=lambda p: (p.namespace, p.name, p.claim_uid))

    def attachments_for_sandbox(self, sandbox_id: str) -> list[Attachment]:
        return [a for a in self.all_attachments() if a.sandbox_id == sandbox_id]

    def all_attachments(self) -> list[Attachment]:
        return [a for uid in sorted(self._claims) for a in self._claims[uid].attachments]

    async def record_attachment(self, attachment: Attachment) -> None:
        await self.record_attachments([attachment])

    async def record_attachments(self, attachments: Iterable[Attachment]) -> None:
        """Add or replace attachments (same claim, ifName, sandbox) with one checkpoint write.

        ``CheckpointError`` when a claim is not prepared (any more) or has no such interface,
        or when the write fails; nothing is recorded then.
        """
        async with self._file.exclusive():
            updated = dict(self._claims)
            for att in attachments:
                record = updated.get(att.claim_uid)
                if record is None:
                    raise CheckpointError(
                        f"cannot record attachment {att.if_name} of sandbox {att.sandbox_id}: "
                        f"claim {att.claim_uid} is not prepared on this node"
                    )
                if record.plan.interface(att.if_name) is None:
                    raise CheckpointError(
                        f"cannot record attachment: claim {record.plan.key} plans no "
                        f"interface {att.if_name!r}"
                    )
                kept = tuple(a for a in record.attachments if a.key != att.key)
                updated[att.claim_uid] = replace(record, attachments=(*kept, att))
            await self._write(updated)

    async def remove_attachment(self, claim_uid: str, if_name: str, sandbox_id: str) -> bool:
        """Forget one attachment (after its DEL); False when it was not recorded."""
        return bool(await self.remove_attachments([(claim_uid, if_name, sandbox_id)]))

    async def remove_attachments(
        self, keys: Iterable[tuple[str, str, str]]
    ) -> list[Attachment]:
        """Forget attachments by (claim UID, ifName, sandbox ID) with one write; returns them."""
        wanted = set(keys)
        async with self._file.exclusive():
            updated = dict(self._claims)
            gone: list[Attachment] = []
            for uid, record in self._claims.items():
                drop = [a for a in record.attachments if a.key in wanted]
                if drop:
                    gone.extend(drop)
                    kept = tuple(a for a in record.attachments if a.key not in wanted)
                    updated[uid] = replace(record, attachments=kept)
            if gone:
                await self._write(updated)
            return gone

    # --- internals -----------------------------------------------------------------------

    async def _fetch(self, ref: ClaimRef) -> _Read:
        async with self._reads:
            try:
                claim = await self._reader.get_claim(ref.namespace, ref.name)
            except NotFoundError:
                return _Read(ref, error=f"claim {_key(ref)}: not found in the API server")
            except KubeAPIError as exc:
                return _Read(ref, error=f"claim {_key(ref)}: cannot read it: {exc}")
            uid = (claim.get("metadata") or {}).get("uid")
            if uid != ref.uid:
                return _Read(ref, error=(
                    f"claim {_key(ref)}: the API server has UID {uid}, the kubelet asked for "
                    f"{ref.uid} (the claim was deleted and re-created)"
                ))
            classes: dict[str, Mapping[str, Any]] = {}
            for name in _class_names(claim, self._driver):
                try:
                    classes[name] = await self._reader.get_device_class(name)
                except KubeAPIError as exc:
                    log.debug("DeviceClass %s unavailable for error attribution: %s", name, exc)
            return _Read(ref, claim, classes)

    def _prepare_one(
        self, item: _Read, existing: PreparedClaim | None
    ) -> tuple[PrepareOutcome, PreparedClaim | None]:
        ref = item.ref
        if item.claim is None:
            return PrepareOutcome(error=item.error), None
        if existing is not None and _same_allocation(item.claim, existing):
            pods = _pod_uids(item.claim)
            if pods is None or pods == existing.plan.pod_uids:
                return PrepareOutcome(existing.plan.devices), None
            return PrepareOutcome(existing.plan.devices), replace(
                existing, plan=replace(existing.plan, pod_uids=pods)
            )
        if existing is not None and existing.attachments:
            return PrepareOutcome(error=(
                f"claim {_key(ref)}: its allocation changed while interfaces of the previous "
                "allocation are still attached; the pod must be stopped first"
            )), None
        try:
            plan = compute_plan(
                item.claim, item.classes or {}, driver=self._driver, policy=self._policy,
                device_if_name=self._resolve,
            )
        except CnidraError as exc:
            text = str(exc) if isinstance(exc, ClaimConfigError) else f"claim {_key(ref)}: {exc}"
            return PrepareOutcome(error=text), None
        return PrepareOutcome(plan.devices), PreparedClaim(plan)

    async def _write(self, updated: dict[str, PreparedClaim]) -> None:
        """Save ``updated`` and adopt it (also when the caller is cancelled mid-save)."""
        await self._file.save(updated)

    def _set(self, claims: dict[str, PreparedClaim], stamp: Stamp) -> None:
        by_pod: dict[str, list[str]] = {}
        for uid, record in claims.items():
            for pod in record.plan.pod_uids:
                by_pod.setdefault(pod, []).append(uid)
        self._claims = claims
        self._by_pod = {pod: tuple(uids) for pod, uids in by_pod.items()}
        self._file.stamp = stamp


def _key(ref: ClaimRef) -> str:
    return f"{ref.namespace}/{ref.name}"


def _same_allocation(claim: Mapping[str, Any], existing: PreparedClaim) -> bool:
    status = claim.get("status")
    allocation = status.get("allocation") if isinstance(status, Mapping) else None
    digest = hashlib.sha256(canonical_json(allocation)).hexdigest()
    return allocation is not None and digest == existing.plan.allocation_digest


def _pod_uids(claim: Mapping[str, Any]) -> tuple[str, ...] | None:
    try:
        return view_claim(claim).pod_uids
    except ConfigError:
        return None


def _class_names(claim: Mapping[str, Any], driver: str) -> list[str]:
    """DeviceClasses worth fetching: those whose configs of our driver are in the allocation."""
    try:
        view = view_claim(claim)
    except ConfigError:
        return []
    names = {
        view.request_classes[r]
        for cfg in view.configs if cfg.source == FROM_CLASS and cfg.driver == driver
        for r in cfg.requests if r in view.request_classes
    }
    return sorted(names)
