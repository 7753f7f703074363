"""Thin async adapter over the Kubernetes API for the driver: discovery, claim and class reads,
ResourceSlice CRUD, server-side apply of ``status.devices``, Events, list+watch caches and the
retrying status writer. Foreign errors (httpx2, lightkube, JSON) become ``cnidra.errors``.

Why lightkube: it is maintained, async, typed, and its config layer handles kubeconfig
(contexts, CA/client certs, tokens, exec credential plugins) and in-cluster service accounts.
We use exactly that layer (an authenticated ``httpx2.AsyncClient``) and speak REST directly,
because its typed models lag resource.k8s.io (v1 with consumable capacity, v1beta1 ``basic:``)
and we must send exact bodies (server-side apply of one list, strict field validation).

Shapes: ``get_claim`` returns claims in the v1 shape on every server (v1beta1 requests moved
under ``exactly``); slices are read and written in the served version's shape
(``KubeClient.api.version``, v1 preferred, v1beta1 on 1.32/1.33); ``_compat`` converts.

Limits: no generic informer framework (one ``Reflector`` per collection); Events are
best-effort (few attempts, bounded queue); the claim cache answers from memory only for
allocated claims with a matching UID, otherwise it GETs.
"""

from cnidra.kube._cache import ClaimCache, Reflector
from cnidra.kube._client import ApiInfo, ApiVersion, KubeClient, WatchEvent, connect
from cnidra.kube._compat import claim_from_version, slice_from_version, slice_to_version
from cnidra.kube._retry import Backoff, retry
from cnidra.kube._status import StatusWriter

__all__ = [
    "ApiInfo",
    "ApiVersion",
    "Backoff",
    "ClaimCache",
    "KubeClient",
    "Reflector",
    "StatusWriter",
    "WatchEvent",
    "claim_from_version",
    "connect",
    "retry",
    "slice_from_version",
    "slice_to_version",
]
