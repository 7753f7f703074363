"""``KubeClient``: discovery, claim/class reads, ResourceSlice CRUD, status apply and Events.

resource.k8s.io objects are spoken in REST directly (JSON dicts); lightkube only provides the
authenticated HTTP client (see ``_transport``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cnidra.errors import KubeAPIError, NotFoundError
from cnidra.kube._compat import claim_from_version
from cnidra.kube._http import Reply, Transport
from cnidra.kube._transport import build_http

log = logging.getLogger(__name__)

GROUP = "resource.k8s.io"
APPLY_PATCH = "application/apply-patch+yaml"
ApiVersion = Literal["v1", "v1beta1"]
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class ApiInfo:
    """What the server offers the driver.

    ``version`` is the resource.k8s.io version in use (v1 preferred, v1beta1 on 1.32/1.33);
    ``consumable_capacity`` whether a slice keeps ``allowMultipleAllocations`` (KEP-5075).
    """

    version: ApiVersion
    server: tuple[int, int]
    git_version: str
    consumable_capacity: bool

    @property
    def group_version(self) -> str:
        return f"{GROUP}/{self.version}"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: ``type`` ADDED/MODIFIED/DELETED/BOOKMARK/ERROR and the object."""

    type: str
    object: dict[str, Any]


def parse_server_version(info: Mapping[str, Any]) -> tuple[int, int]:
    """(major, minor) from ``/version`` (``minor`` may read ``36+`` on some distributions)."""
    match = _VERSION.match(str(info.get("gitVersion") or ""))
    if match:
        return int(match.group(1)), int(match.group(2))
    try:
        return int(str(info.get("major"))), int(re.sub(r"\D", "", str(info.get("minor"))))
    except ValueError:
        return 0, 0


def _probe_slice(api_version: str) -> dict[str, Any]:
    """A throw-away slice that uses consumable capacity, for a dry-run create."""
    body: dict[str, Any] = {
        "allowMultipleAllocations": True,
        "capacity": {"probe": {"value": "1", "requestPolicy": {"default": "1"}}},
    }
    device: dict[str, Any] = {"name": "probe"}
    if api_version.endswith("/v1beta1"):
        device["basic"] = body
    else:
        device.update(body)
    name = f"cnidra-capacity-probe-{uuid.uuid4().hex[:8]}"
    return {
        "apiVersion": api_version, "kind": "ResourceSlice", "metadata": {"name": name},
        "spec": {"driver": "probe.cnidra.invalid", "allNodes": True,
                 "pool": {"name": name, "generation": 1, "resourceSliceCount": 1},
                 "devices": [device]},
    }


def _kept_multiple_allocations(obj: Mapping[str, Any]) -> bool:
    for dev in (obj.get("spec") or {}).get("devices") or []:
        body = dev.get("basic") if isinstance(dev.get("basic"), Mapping) else dev
        if body.get("allowMultipleAllocations") is True:
            return True
    return False


class KubeClient:
    """The driver's view of the API server. Create with :func:`connect`; ``close()`` at the end.

    Implements ``claims.ClaimReader``: ``get_claim`` returns the claim in the **v1 shape**
    (a v1beta1 request's fields moved under ``exactly``; ``status`` is the same in every
    version) and ``get_device_class`` the class as served (identical in v1 and v1beta1).
    ResourceSlices are read and written in the served version's shape (``api.version``).
    """

    def __init__(self, transport: Transport, namespace: str, api: ApiInfo,
                 *, field_manager: str = "cnidra") -> None:
        self._t = transport
        self.namespace = namespace
        self.api = api
        self.field_manager = field_manager
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests sent so far (watch streams included); for tests and metrics."""
        return self._t.sent

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._t.http.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    async def _send(self, method: str, path: str, **kwargs: Any) -> Reply:
        if self._closed:
            raise KubeAPIError(f"{method} {path}: the client is closed")
        return await self._t.send(method, path, **kwargs)

    # --- discovery ------------------------------------------------------------------------

    async def discover(self) -> ApiInfo:
        """Find the served resource.k8s.io version and whether consumable capacity is on.

        Consumable capacity is detected by what the server does, not by its version number: a
        **dry-run** create (nothing is stored) of a probe slice with
        ``allowMultipleAllocations: true``. A server whose DRAConsumableCapacity gate is off
        drops the field (as for every disabled-gate field), one that has it keeps it. Servers
        older than 1.34 do not know the field at all and are not asked. When the probe cannot
        run (e.g. RBAC denies create), the gate's default is assumed: on from 1.36.
        """
        version_info = (await self._send("GET", "/version")).body
        server = parse_server_version(version_info)
        try:
            group = (await self._send("GET", f"/apis/{GROUP}")).body
        except NotFoundError as exc:
            raise KubeAPIError(f"the API server does not serve {GROUP} (DRA); "
                               "Kubernetes >= 1.32 is needed") from exc
        served = {str(v.get("version")) for v in group.get("versions") or []}
        chosen: ApiVersion
        if "v1" in served:
            chosen = "v1"
        elif "v1beta1" in served:
            chosen = "v1beta1"
        else:
            raise KubeAPIError(f"the API server serves {GROUP} versions {sorted(served)}; "
                               "cnidra needs v1 or v1beta1")
        consumable = False
        if server >= (1, 34):
            probe = _probe_slice(f"{GROUP}/{chosen}")
            try:
                reply = await self._send("POST", f"/apis/{GROUP}/{chosen}/resourceslices",
                                         params={"dryRun": "All"}, body=probe)
                consumable = _kept_multiple_allocations(reply.body)
            except KubeAPIError as exc:
                consumable = server >= (1, 36)
                log.warning("consumable-capacity probe failed (%s); assuming %s from the "
                            "server version %d.%d", exc, consumable, *server)
        self.api = ApiInfo(chosen, server, str(version_info.get("gitVersion", "")), consumable)
        log.info("API server %s: %s, consumable capacity %s", self.api.git_version,
                 self.api.group_version, "on" if consumable else "off")
        return self.api

    # --- claims and classes (claims.ClaimReader) ------------------------------------------

    def _claims_path(self, namespace: str | None) -> str:
        base = f"/apis/{GROUP}/{self.api.version}"
        return f"{base}/namespaces/{namespace}/resourceclaims" if namespace else (
            f"{base}/resourceclaims")

    async def get_claim(self, namespace: str, name: str) -> dict[str, Any]:
        """The ResourceClaim in the v1 shape; ``NotFoundError`` when it does not exist."""
        body = (await self._send("GET", f"{self._claims_path(namespace)}/{name}")).body
        return to_v1_claim(body, self.api.group_version)

    async def get_device_class(self, name: str) -> dict[str, Any]:
        """The DeviceClass; ``NotFoundError`` when it does not exist."""
        path = f"/apis/{GROUP}/{self.api.version}/deviceclasses/{name}"
        return (await self._send("GET", path)).body

    async def list_claims(
        self, namespace: str | None = None, *, timeout: float | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """All claims (v1 shape) and the list's resourceVersion."""
        body = (await self._send("GET", self._claims_path(namespace), timeout=timeout)).body
        items = [to_v1_claim(i, self.api.group_version) for i in body.get("items") or []]
        return items, str((body.get("metadata") or {}).get("resourceVersion") or "")

    def watch_claims(
        self, resource_version: str, *, namespace: str | None = None, timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """Claim events after ``resource_version`` (objects in the v1 shape)."""
        return self._watch(self._claims_path(namespace), resource_version, timeout_seconds,
                           {}, claim=True)

    async def apply_claim_status(
        self, namespace: str, name: str, uid: str, devices: Sequence[Mapping[str, Any]],
        *, field_manager: str | None = None, timeout: float | None = None,
    ) -> dict[str, Any]:
        """Server-side apply of ``status.devices`` (our entries only) on the status subresource.

        ``metadata.uid`` is sent as a precondition: a claim deleted and re-created under the
        same name is rejected (422, uid is immutable) instead of getting our entries. ``force``
        takes over fields another manager set (the entries are ours by key).
        """
        body = {
            "apiVersion": self.api.group_version, "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "status": {"devices": [dict(d) for d in devices]},
        }
        params = {"fieldManager": field_manager or self.field_manager, "force": "true"}
        reply = await self._send("PATCH", f"{self._claims_path(namespace)}/{name}/status",
                                 params=params, body=body, content_type=APPLY_PATCH,
                                 timeout=timeout)
        return reply.body

    async def create_event(
        self, namespace: str, *, involved: Mapping[str, str], reason: str, message: str,
        warning: bool = False, component: str = "", host: str = "",
    ) -> dict[str, Any]:
        """A core/v1 Event about ``involved`` (kind, name, uid, apiVersion; namespaced)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        name = f"{involved.get('name', 'object')[:200]}.{uuid.uuid4().hex[:16]}"
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {**dict(involved), "namespace": namespace},
            "reason": reason[:128], "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": component or self.field_manager, **(
                {"host": host} if host else {})},
            "reportingComponent": component or self.field_manager,
            "reportingInstance": host or (component or self.field_manager),
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        return (await self._send("POST", f"/api/v1/namespaces/{namespace}/events",
                                 body=event)).body

    async def get_node(self, name: str) -> dict[str, Any]:
        return (await self._send("GET", f"/api/v1/nodes/{name}")).body

    # --- ResourceSlices (served version's shape) ------------------------------------------

    @property
    def _slices(self) -> str:
        return f"/apis/{GROUP}/{self.api.version}/resourceslices"

    @staticmethod
    def _selector(node_name: str | None, driver: str | None) -> dict[str, str]:
        terms = [f"spec.nodeName={node_name}"] if node_name else []
        terms += [f"spec.driver={driver}"] if driver else []
        return {"fieldSelector": ",".join(terms)} if terms else {}

    async def list_slices(
        self, *, node_name: str | None = None, driver: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Slices selected by ``spec.nodeName``/``spec.driver``, and the list resourceVersion."""
        body = (await self._send("GET", self._slices,
                                 params=self._selector(node_name, driver))).body
        items = []
        for item in body.get("items") or []:
            items.append({"apiVersion": self.api.group_version, "kind": "ResourceSlice", **item})
        return items, str((body.get("metadata") or {}).get("resourceVersion") or "")

    def watch_slices(
        self, resource_version: str, *, node_name: str | None = None, driver: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        return self._watch(self._slices, resource_version, timeout_seconds,
                           self._selector(node_name, driver))

    async def create_slice(
        self, obj: Mapping[str, Any], *, field_manager: str | None = None,
    ) -> dict[str, Any]:
        """Create (strict field validation: a shape mistake is an error, not a silent drop)."""
        params = {"fieldManager": field_manager or self.field_manager,
                  "fieldValidation": "Strict"}
        return (await self._send("POST", self._slices, params=params, body=obj)).body

    async def update_slice(
        self, obj: Mapping[str, Any], *, field_manager: str | None = None,
    ) -> dict[str, Any]:
        """Replace; ``obj.metadata.resourceVersion`` makes it conditional (409 when stale)."""
        name = str((obj.get("metadata") or {}).get("name") or "")
        params = {"fieldManager": field_manager or self.field_manager,
                  "fieldValidation": "Strict"}
        return (await self._send("PUT", f"{self._slices}/{name}", params=params,
                                 body=obj)).body

    async def delete_slice(self, name: str) -> None:
        """Delete; an already deleted slice is not an error."""
        try:
            await self._send("DELETE", f"{self._slices}/{name}")
        except NotFoundError:
            return

    # --- watch ----------------------------------------------------------------------------

    async def _watch(
        self, path: str, resource_version: str, timeout_seconds: int,
        params: Mapping[str, str], *, claim: bool = False,
    ) -> AsyncIterator[WatchEvent]:
        """Events until the server closes the stream. A 410 (in the HTTP status or as an
        ERROR event) raises ``KubeAPIError`` with status 410: the caller relists."""
        if self._closed:
            raise KubeAPIError(f"WATCH {path}: the client is closed")
        query = {**params, "watch": "true", "allowWatchBookmarks": "true",
                 "resourceVersion": resource_version, "timeoutSeconds": str(timeout_seconds)}
        async for raw in self._t.stream(path, query):
            kind = str(raw.get("type") or "")
            obj = raw.get("object")
            if not isinstance(obj, dict):
                continue
            if kind == "ERROR":
                code = int(obj.get("code") or 0)
                raise KubeAPIError(f"WATCH {path}: {obj.get('message', 'error event')}",
                                   code, str(obj.get("reason") or ""), obj)
            if claim and kind != "BOOKMARK":
                obj = to_v1_claim(obj, self.api.group_version)
            yield WatchEvent(kind, obj)


def to_v1_claim(obj: dict[str, Any], served: str) -> dict[str, Any]:
    """A claim read through ``served`` in the v1 shape (apiVersion rewritten to v1)."""
    out = claim_from_version({"apiVersion": served, **obj}) if served.endswith("/v1beta1") else obj
    out.setdefault("apiVersion", served)
    out.setdefault("kind", "ResourceClaim")
    if served.endswith("/v1beta1"):
        out["apiVersion"] = f"{GROUP}/v1"
    return out


async def connect(
    kubeconfig: str | None, *, context: str | None = None, timeout: float = 10.0,
    field_manager: str = "cnidra", token_refresh: float = 60.0,
) -> KubeClient:
    """An authenticated client after discovery. Empty/None ``kubeconfig`` means in-cluster
    (service-account token re-read on rotation). ``ConfigError`` for a bad configuration,
    ``KubeAPIError`` when the server cannot be reached or serves no usable DRA version."""
    http, namespace = build_http(Path(kubeconfig) if kubeconfig else None, context=context,
                                 timeout=timeout, token_refresh=token_refresh)
    client = KubeClient(Transport(http, timeout), namespace,
                        ApiInfo("v1", (0, 0), "", False), field_manager=field_manager)
    try:
        await client.discover()
    except BaseException:
        await client.close()
        raise
    return client
