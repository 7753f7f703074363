"""Prepared-claim state: attach plans computed from allocations and opaque configs (admin policy
applied), kept in a versioned, atomically written checkpoint (the single source of truth).

Limits and decisions:

* :func:`compute_plan` is pure. Configs come from ``status.allocation.devices.config`` (class
  configs first, then claim configs). Per allocated device the claim's ``kind: CNI`` config wins
  over the class's **per top-level field** (``ifName``, ``config``; ``config`` is replaced whole).
  Two ``kind: CNI`` configs of ours from the same source for one request are an error. ``ifName``
  has no default: it is required (a generated ``net1`` would collide across a pod's claims).
* ``kind: CNIPolicy`` (same apiVersion) narrows :class:`AdminPolicy` and is honoured only from
  DeviceClass configs; in a claim it is an error. :func:`check_if_name_allowed` (reserved pod
  interface names) and ``MASTER_PLUGINS`` are public for ``cnidra validate``'s offline checks.
* Every problem is a :class:`ClaimConfigError` (a ``ConfigError``): ``claim ns/name: path: why``.
* :class:`ClaimState` answers the kubelet per claim and refuses to unprepare a claim that still
  has attachments (attach's CNI DEL removes them first; the kubelet retries). Prepare is two
  phases, :meth:`ClaimState.fetch` (API reads, no lock, concurrent across calls) then
  :meth:`ClaimState.apply_prepare` (:class:`Fetched` in, the state part under the lock), so the
  caller can serialize only the second; :meth:`ClaimState.prepare` is both.
* Every state change holds ``flock`` on ``<state dir>/checkpoint.lock`` and first reloads the
  checkpoint when another instance sharing the directory replaced it (stamp: inode, mtime,
  size), so two instances (rolling update) never act on a stale cache nor lose each other's
  changes. The synchronous queries answer from memory; :meth:`ClaimState.refresh` reloads.
* The checkpoint is written with blocking file I/O in a worker thread, never on the loop.
"""

from cnidra.claims._checkpoint import Checkpoint, Stamp
from cnidra.claims._errors import ClaimConfigError
from cnidra.claims._plan import check_pod_interfaces, compute_plan
from cnidra.claims._policy import (
    DEFAULT_ALLOWED_PLUGIN_TYPES,
    MASTER_PLUGINS,
    AdminPolicy,
    DeviceIfNameResolver,
    check_if_name_allowed,
    identity_resolver,
)
from cnidra.claims._records import PreparedClaim
from cnidra.claims._state import ClaimReader, ClaimState, Fetched

__all__ = [
    "DEFAULT_ALLOWED_PLUGIN_TYPES",
    "MASTER_PLUGINS",
    "AdminPolicy",
    "Checkpoint",
    "ClaimConfigError",
    "ClaimReader",
    "ClaimState",
    "DeviceIfNameResolver",
    "Fetched",
    "PreparedClaim",
    "Stamp",
    "check_if_name_allowed",
    "check_pod_interfaces",
    "compute_plan",
    "identity_resolver",
]
