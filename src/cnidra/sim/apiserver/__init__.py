"""A kube-apiserver stand-in for the embedded node and the tests.

Job: serve, over plain HTTP on 127.0.0.1 with a bearer token, the subset of the Kubernetes
REST API that the driver and the demo use — discovery, resource.k8s.io v1/v1beta1/v1beta2
ResourceSlices, DeviceClasses, ResourceClaims (+status), ResourceClaimTemplates, core Nodes,
Pods, Namespaces and Events — with resourceVersions, Status error bodies, selectors, watch,
merge/JSON patch and server-side apply of ``status.devices`` with per-manager ownership,
v1 <-> v1beta1 conversion (v1beta2 has the v1 shape), deprecation Warning headers, and the API
server's own validation of slices and ``status.devices`` (messages copied from a real v1.36.2;
``tests/sim_apiserver`` replays every captured case). ``ApiServer.store`` is the same state for
in-process use (the scheduler stand-in, tests): get/list/create/update/patch/delete and
``subscribe()`` for changes.

Limits: no RBAC/admission, no generic server-side apply (only ``status.devices`` of claims;
apply elsewhere returns the object unchanged), strategic merge patch behaves as merge patch,
no garbage collection or finalizer handling (a delete removes the object at once), a watch does
not turn a MODIFIED that leaves a field selector into DELETED, managedFields are recorded only
for ``status.devices`` (and a creator's ``spec``).

Why aiohttp and not kmock: kmock scripts responses per request (a DSL for operator tests); the
behaviour we need is stateful semantics (resourceVersion, SSA ownership, validation messages,
conversion), which we would write ourselves either way, and aiohttp is already a dependency.
"""

from cnidra.sim.apiserver._errors import FieldError
from cnidra.sim.apiserver._patch import APPLY, JSON_PATCH, MERGE, STRATEGIC
from cnidra.sim.apiserver._resources import TYPES, ResourceType
from cnidra.sim.apiserver._server import ApiServer
from cnidra.sim.apiserver._store import Store, Subscription, WatchEvent, Written

__all__ = [
    "APPLY",
    "JSON_PATCH",
    "MERGE",
    "STRATEGIC",
    "TYPES",
    "ApiServer",
    "FieldError",
    "ResourceType",
    "Store",
    "Subscription",
    "WatchEvent",
    "Written",
]
