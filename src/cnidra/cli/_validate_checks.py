"""``cnidra validate``'s checks of one set of documents: DeviceClasses first (their opaque
configs, selectors, ``CNIPolicy``), then ResourceClaims and ResourceClaimTemplates
(``resource.k8s.io`` v1, v1beta2 and v1beta1 request shapes, opaque ``parameters``, the CNI
conflist, ``ifName`` rules after the claim-over-class merge, the admin policy).

The opaque schema and the ``ifName`` syntax come from ``parse_opaque``, the conflist from
``parse_conflist``, the reserved names from ``check_if_name_allowed`` and the narrowing from
``AdminPolicy.narrowed``, as in ``NodePrepareResources``. The plugin-type and ``master`` checks
are this module's own: unlike ``cnidra.claims``' (first problem only, against the allocated
device), they report every problem and, with no allocation, only that ``master`` is missing.

Limits: nothing that needs the allocation is checked; a DeviceClass not among the documents is
unknown, so what it might supply is reported as a warning. Other kinds are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnidra.cel import compile_selectors
from cnidra.claims import MASTER_PLUGINS, AdminPolicy, check_if_name_allowed
from cnidra.cli._validate_docs import Document, Finding, Report
from cnidra.cni import parse_conflist
from cnidra.errors import ConfigError
from cnidra.model.claim_config import CNIConfig, CNIPolicyConfig, OpaqueConfig, parse_opaque

GROUP = "resource.k8s.io"
VERSIONS = ("v1", "v1beta2", "v1beta1")
DEFAULT_CLASS = "cni.networking.x-k8s.io"
KINDS = ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate")


@dataclass
class _ClassInfo:
    name: str
    ours: bool
    cni: CNIConfig | None = None
    cni_path: str = ""
    policy: CNIPolicyConfig | None = None


@dataclass(frozen=True)
class _Request:
    name: str  # "req" or "req/sub"
    base: str
    device_class: str
    path: str
    multiple: str  # why this request yields more than one device, "" when it yields one


@dataclass
class Validator:
    """Checks documents for ``driver`` under ``policy``; DeviceClasses first, then claims."""

    driver: str
    policy: AdminPolicy
    findings: list[Finding] = field(default_factory=list)
    classes: dict[str, _ClassInfo] = field(default_factory=dict)
    checked: int = 0

    def run(self, docs: Sequence[Document]) -> list[Finding]:
        ours = [d for d in docs if d.kind in KINDS]
        for doc in ours:
            if doc.kind == "DeviceClass":
                self._device_class(doc)
        for doc in ours:
            if doc.kind != "DeviceClass":
                self._claim(doc)
        self.checked += len(ours)
        return self.findings

    def _version(self, doc: Document, report: Report) -> str | None:
        api_version = str(doc.obj.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        if group == GROUP and version in VERSIONS:
            return version
        allowed = ", ".join(f"{GROUP}/{v}" for v in VERSIONS)
        report.error("apiVersion", f"{api_version!r} is not supported for {doc.kind} "
                                   f"(use {allowed})")
        return None

    # ---- DeviceClass

    def _device_class(self, doc: Document) -> None:
        report = Report(doc, self.findings)
        if self._version(doc, report) is None:
            return
        spec = doc.obj.get("spec") or {}
        if not isinstance(spec, Mapping):
            report.error("spec", "must be an object")
            return
        selectors = spec.get("selectors") or []
        info = _ClassInfo(doc.key, ours=any(self.driver in json.dumps(s) for s in selectors))
        self.classes[doc.key] = info
        try:
            compile_selectors(selectors, "class", doc.key, "spec.selectors")
        except ConfigError as exc:
            report.config_error(exc)
        configs = spec.get("config") or []
        for j, entry in enumerate(configs if isinstance(configs, list) else []):
            path = f"spec.config[{j}]"
            parsed = self._opaque(entry, path, report)
            if parsed is None:
                continue
            info.ours = True
            if isinstance(parsed, CNIPolicyConfig):
                if info.policy is not None:
                    report.error(f"{path}.opaque.parameters.kind",
                                 "a second CNIPolicy config for this class; keep one")
                info.policy = parsed
            elif info.cni is not None:
                report.error(f"{path}.opaque.parameters.kind",
                             f"a second CNI config for this class ({info.cni_path} is the "
                             "first); keep one")
            else:
                info.cni, info.cni_path = parsed, f"{path}.opaque.parameters"
        if info.cni is not None:
            self._interface(info.cni, info.cni_path, report, info.policy)

    def _opaque(self, entry: Any, path: str, report: Report) -> OpaqueConfig | None:
        """Our opaque config at ``entry`` parsed, or None (another driver's, or faulty)."""
        if not isinstance(entry, Mapping):
            report.error(path, "must be an object")
            return None
        opaque = entry.get("opaque")
        if not isinstance(opaque, Mapping) or opaque.get("driver") != self.driver:
            return None
        try:
            return parse_opaque(opaque.get("parameters"), f"{path}.opaque.parameters")
        except ConfigError as exc:
            report.config_error(exc)
            return None

    def _interface(self, cni: CNIConfig, path: str, report: Report,
                   narrowing: CNIPolicyConfig | None) -> None:
        """The checks of one ``kind: CNI`` config's own fields."""
        if cni.if_name is not None:
            try:
                check_if_name_allowed(cni.if_name, self.policy, f"{path}.ifName")
            except ConfigError as exc:
                report.config_error(exc)
        if cni.config is not None:
            for rel, message in self.conflist_problems(cni.config, narrowing):
                report.error(f"{path}.config.{rel}" if rel else f"{path}.config", message)

    def conflist_problems(self, config: Mapping[str, Any],
                          narrowing: CNIPolicyConfig | None) -> list[tuple[str, str]]:
        """(conflist-relative path, message) for a bad conflist or a policy breach."""
        try:
            net = parse_conflist(config)
        except ConfigError as exc:
            return [(exc.path, exc.message)]
        policy = self.policy.narrowed(narrowing)
        why = " (narrowed by the DeviceClass's CNIPolicy)" if narrowing is not None else ""
        allowed = ", ".join(sorted(policy.allowed_plugin_types)) or "none"
        out: list[tuple[str, str]] = []
        for i, plugin in enumerate(net.plugins):
            types = [(f"plugins[{i}].type", plugin.type)]
            ipam = plugin.raw.get("ipam")
            if isinstance(ipam, Mapping) and isinstance(ipam.get("type"), str):
                types.append((f"plugins[{i}].ipam.type", ipam["type"]))
            out.extend(
                (where, f"plugin type {name!r} is not allowed by the node's admin policy{why} "
                        f"(allowed: {allowed})")
                for where, name in types if name not in policy.allowed_plugin_types
            )
            if (policy.require_master_is_allocated_device and plugin.type in MASTER_PLUGINS
                    and "master" not in plugin.raw):
                out.append((f"plugins[{i}].master",
                            f"is required for {plugin.type} by the node's admin policy: set it "
                            "to the interface of the allocated device"))
        return out

    # ---- ResourceClaim / ResourceClaimTemplate

    def _claim(self, doc: Document) -> None:
        report = Report(doc, self.findings)
        version = self._version(doc, report)
        if version is None:
            return
        spec = doc.obj.get("spec") or {}
        prefix = "spec.devices"
        if doc.kind == "ResourceClaimTemplate":
            spec, prefix = (spec.get("spec") or {}) if isinstance(spec, Mapping) else {}, (
                "spec.spec.devices")
        devices = spec.get("devices") if isinstance(spec, Mapping) else None
        if not isinstance(devices, Mapping):
            return
        requests = self._requests(devices, prefix, version, report)
        known = _request_names(devices)
        configs = devices.get("config") or []
        claim_cni: list[tuple[CNIConfig, str, list[str]]] = []
        faulty: list[list[str]] = []
        for i, entry in enumerate(configs if isinstance(configs, list) else []):
            path = f"{prefix}.config[{i}]"
            targets = [str(t) for t in (entry.get("requests") or [])] if isinstance(
                entry, Mapping) else []
            for k, target in enumerate(targets):
                if target not in known:
                    names = ", ".join(sorted(known)) or "none"
                    report.error(f"{path}.requests[{k}]",
                                 f"{target!r} is not a request of this claim (requests: {names})")
            parsed = self._opaque(entry, path, report)
            if isinstance(parsed, CNIPolicyConfig):
                report.error(f"{path}.opaque.parameters.kind",
                             "CNIPolicy is an admin setting honoured only in a DeviceClass "
                             "config; remove it from the claim")
            elif isinstance(parsed, CNIConfig):
                claim_cni.append((parsed, f"{path}.opaque.parameters", targets))
            elif _is_ours(entry, self.driver):
                faulty.append(targets)  # already reported; do not also call it missing
        self._interfaces(requests, claim_cni, faulty, report)

    def _requests(self, devices: Mapping[str, Any], prefix: str, version: str,
                  report: Report) -> list[_Request]:
        out: list[_Request] = []
        raw_requests = devices.get("requests") or []
        for index, raw in enumerate(raw_requests if isinstance(raw_requests, list) else []):
            rpath = f"{prefix}.requests[{index}]"
            if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
                report.error(f"{rpath}.name", "is required")
                continue
            name = raw["name"]
            if version != "v1beta1" and "exactly" not in raw and "firstAvailable" not in raw:
                hint = (" (deviceClassName sits under exactly in resource.k8s.io/"
                        f"{version}; the flat form is v1beta1)") if "deviceClassName" in raw else ""
                report.error(rpath, f"set exactly or firstAvailable{hint}")
                continue
            if version == "v1beta1" and "exactly" in raw:
                report.error(f"{rpath}.exactly", "is not a field in resource.k8s.io/v1beta1 "
                                                 "(give deviceClassName on the request itself)")
                continue
            if isinstance(raw.get("firstAvailable"), list):
                for s, sub in enumerate(raw["firstAvailable"]):
                    spath = f"{rpath}.firstAvailable[{s}]"
                    if isinstance(sub, Mapping) and isinstance(sub.get("name"), str):
                        out.extend(self._one(f"{name}/{sub['name']}", name, sub, spath, report))
                continue
            body = raw.get("exactly") if "exactly" in raw else raw
            bpath = f"{rpath}.exactly" if "exactly" in raw else rpath
            if isinstance(body, Mapping):
                out.extend(self._one(name, name, body, bpath, report))
        return out

    def _one(self, name: str, base: str, body: Mapping[str, Any], path: str,
             report: Report) -> list[_Request]:
        try:
            compile_selectors(body.get("selectors"), "claim", name, f"{path}.selectors")
        except ConfigError as exc:
            report.config_error(exc)
        mode = body.get("allocationMode") or "ExactCount"
        count = body.get("count", 1)
        multiple = ""
        if mode == "All":
            multiple = "allocationMode All"
        elif isinstance(count, int) and count > 1:
            multiple = f"count {count}"
        device_class = body.get("deviceClassName")
        if not isinstance(device_class, str):
            report.error(f"{path}.deviceClassName", "is required")
            return []
        return [_Request(name, base, device_class, path, multiple)]

    def _interfaces(self, requests: Sequence[_Request],
                    claim_cni: Sequence[tuple[CNIConfig, str, list[str]]],
                    faulty: Sequence[list[str]], report: Report) -> None:
        names: dict[str, tuple[str, str]] = {}  # ifName -> (base request, path)
        for request in requests:
            if any(_targets(t, request) for t in faulty):
                continue
            mine = [(c, p) for c, p, targets in claim_cni if _targets(targets, request)]
            info = self.classes.get(request.device_class)
            if not mine and not (info and info.ours) and request.device_class != DEFAULT_CLASS:
                continue  # not a request for this driver, as far as we can tell
            if len(mine) > 1:
                report.error(f"{mine[1][1]}.kind",
                             f"request {request.name!r} gets two CNI configs of driver "
                             f"{self.driver!r} from the claim ({mine[0][1]} and this one); "
                             "keep one")
            cni, cpath = mine[0] if mine else (None, "")
            narrowing = info.policy if info else None
            if cni is not None:
                self._interface(cni, cpath, report, narrowing)
            if_name = self._field(request, cni, cpath, info, "ifName", report=report)
            self._field(request, cni, cpath, info, "config", report=report)
            if if_name is None:
                continue
            if request.multiple:
                report.error(request.path,
                             f"{request.multiple} gives this request more than one device, but "
                             f"its config names one pod interface {if_name[0]!r}; pod interface "
                             "names must be unique (use one request per interface)")
            first = names.setdefault(if_name[0], (request.base, if_name[1]))
            if first[0] != request.base:
                where = if_name[1] if if_name[1].startswith("spec") else request.path
                report.error(where,
                             f"{if_name[0]!r} is also the interface of request {first[0]!r} "
                             f"({first[1]}); pod interface names must be unique within a claim")

    def _field(self, request: _Request, cni: CNIConfig | None, cpath: str,
               info: _ClassInfo | None, key: str, *, report: Report) -> tuple[str, str] | None:
        """Where ``key`` comes from after the claim-over-class merge: (ifName value, path)."""
        attr = "if_name" if key == "ifName" else "config"
        if cni is not None and getattr(cni, attr) is not None:
            return (str(cni.if_name), f"{cpath}.ifName") if key == "ifName" else None
        if info is not None and info.cni is not None and getattr(info.cni, attr) is not None:
            if key == "ifName":
                return str(info.cni.if_name), f"DeviceClass {info.name} {info.cni_path}.ifName"
            return None
        cls = request.device_class
        if cni is None and (info is None or info.cni is None):
            if key == "config":  # no CNI config at all: reported once, under ifName
                return None
            text = (f"request {request.name!r} has no config of kind CNI: add one to "
                    f"spec.devices.config with opaque.driver {self.driver!r} and requests "
                    f"[{request.base!r}]")
            if info is None:
                report.warn(request.path, f"{text}, unless DeviceClass {cls!r} (not among "
                                          "the files given) has one")
            else:
                report.error(request.path, f"{text} (DeviceClass {cls!r} has none)")
            return None
        what = ("is required: name the pod interface for this device (e.g. net1)"
                if key == "ifName" else
                "is required: give the CNI network configuration list for this device")
        if info is None:
            report.warn(f"{cpath}.{key}", f"is not set: DeviceClass {cls!r} must give it (it "
                                          "is not among the files given)")
        elif cni is None:
            report.error(request.path, f"{key} {what}; neither the claim nor DeviceClass "
                                       f"{cls!r} ({info.cni_path}) sets it")
        else:
            report.error(f"{cpath}.{key}", f"{what} (DeviceClass {cls!r} does not give it)")
        return None


def _request_names(devices: Mapping[str, Any]) -> set[str]:
    """Every request and subrequest name (``req``, ``req/sub``), even of faulty requests."""
    names: set[str] = set()
    raw_requests = devices.get("requests") or []
    for raw in raw_requests if isinstance(raw_requests, list) else []:
        if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
            names.add(raw["name"])
            subs = raw.get("firstAvailable")
            names.update(f"{raw['name']}/{sub['name']}" for sub in subs or ()
                         if isinstance(subs, list) and isinstance(sub, Mapping)
                         and isinstance(sub.get("name"), str))
    return names


def _targets(targets: Sequence[str], request: _Request) -> bool:
    return not targets or request.name in targets or request.base in targets


def _is_ours(entry: Any, driver: str) -> bool:
    opaque = entry.get("opaque") if isinstance(entry, Mapping) else None
    return isinstance(opaque, Mapping) and opaque.get("driver") == driver

