"""``cnidra validate``: check DRA manifests for this driver offline, before a pod hits them.

Reads ResourceClaims, ResourceClaimTemplates and DeviceClasses (``resource.k8s.io`` v1, v1beta2
and v1beta1 shapes; multi-document YAML, JSON, ``List`` objects) and reports what the driver
would refuse in ``NodePrepareResources``: the opaque ``parameters`` schema, the CNI conflist,
``ifName`` rules (a valid Linux name, not reserved, unique within a claim) and the admin policy
(allowed plugin types, narrowed by a DeviceClass ``CNIPolicy``; macvlan/ipvlan must name their
``master``). Every finding reads ``FILE: Kind ns/name: field.path: what is wrong``.

Limits: nothing that needs the allocation is checked (whether ``master`` is the allocated
device, two claims of one pod using one ``ifName``); a DeviceClass that is not among the files
given is unknown, so what it might supply is reported as a warning, not an error. Other kinds
(Deployments, Pods, ...) are skipped. Exit 0 when clean (warnings allowed), 1 on errors, 2 when
a file cannot be read or parsed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnidra.cel import compile_selectors
from cnidra.claims import AdminPolicy
from cnidra.cni import parse_conflist
from cnidra.errors import ConfigError
from cnidra.model.claim_config import CNIConfig, CNIPolicyConfig, OpaqueConfig, parse_opaque
from cnidra.runtime import Settings

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2

GROUP = "resource.k8s.io"
VERSIONS = ("v1", "v1beta2", "v1beta1")
DEFAULT_CLASS = "cni.networking.x-k8s.io"
MASTER_PLUGINS = frozenset({"macvlan", "ipvlan"})
KINDS = ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate")


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Document:
    """One object read from a file (``List`` items are documents of their own)."""

    file: str
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def key(self) -> str:
        meta = self.obj.get("metadata") or {}
        name = str(meta.get("name") or meta.get("generateName") or "<unnamed>")
        if self.kind == "DeviceClass":
            return name
        return f"{meta.get('namespace') or 'default'}/{name}"


def load_documents(path: str) -> list[Document]:
    """The objects in ``path`` (``-`` is stdin). Raises ``ConfigError`` when unreadable."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        raw = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML or JSON: {_yaml_problem(exc)}") from exc
    docs: list[Document] = []
    for item in raw:
        docs.extend(_expand(path, item))
    return docs


def _expand(path: str, item: Any) -> Iterator[Document]:
    if item is None:
        return
    if not isinstance(item, Mapping):
        raise ConfigError(f"{path}: a document is {type(item).__name__}, not an object")
    kind = str(item.get("kind", ""))
    if kind.endswith("List") and isinstance(item.get("items"), list):
        # the API server leaves kind/apiVersion off the items of a typed list (FooList)
        defaults = {"kind": kind[:-4], "apiVersion": item.get("apiVersion")} if kind != "List" \
            else {}
        for sub in item["items"]:
            typed = {**defaults, **sub} if isinstance(sub, Mapping) and defaults and (
                "kind" not in sub) else sub
            yield from _expand(path, typed)
        return
    yield Document(path, item)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    file: str
    kind: str
    key: str
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        level = "warning: " if self.warning else ""
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}: {self.kind} {self.key}: {where}{level}{self.message}"


@dataclass
class _Report:
    doc: Document
    findings: list[Finding]

    def error(self, path: str, message: str) -> None:
        self.findings.append(Finding(self.doc.file, self.doc.kind, self.doc.key, path, message))

    def warn(self, path: str, message: str) -> None:
        self.findings.append(
            Finding(self.doc.file, self.doc.kind, self.doc.key, path, message, warning=True)
        )

    def config_error(self, exc: ConfigError, prefix: str = "") -> None:
        nested = exc.under(prefix) if prefix else exc
        self.error(nested.path, nested.message)


# --------------------------------------------------------------------------- the checks


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

    def _version(self, doc: Document, report: _Report) -> str | None:
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
        report = _Report(doc, self.findings)
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

    def _opaque(self, entry: Any, path: str, report: _Report) -> OpaqueConfig | None:
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

    def _interface(self, cni: CNIConfig, path: str, report: _Report,
                   narrowing: CNIPolicyConfig | None) -> None:
        """The checks of one ``kind: CNI`` config's own fields."""
        if cni.if_name is not None and cni.if_name in self.policy.reserved_if_names:
            reserved = ", ".join(sorted(self.policy.reserved_if_names))
            report.error(f"{path}.ifName", f"{cni.if_name!r} is reserved in the pod (reserved: "
                                           f"{reserved}); choose another name, e.g. net1")
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
        report = _Report(doc, self.findings)
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
                  report: _Report) -> list[_Request]:
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
             report: _Report) -> list[_Request]:
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
                    faulty: Sequence[list[str]], report: _Report) -> None:
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
               info: _ClassInfo | None, key: str, *, report: _Report) -> tuple[str, str] | None:
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


# --------------------------------------------------------------------------- command


def _plugins(text: str) -> frozenset[str]:
    return frozenset(p.strip() for p in text.split(",") if p.strip())


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate", help="check ResourceClaims, templates and DeviceClasses offline",
        description="Check DRA manifests for this driver: opaque config schema, CNI conflist, "
                    "ifName rules and the admin policy. Findings read 'FILE: Kind ns/name: "
                    f"field.path: what is wrong'. Exit {EXIT_OK} when clean, {EXIT_INVALID} on "
                    f"errors, {EXIT_UNREADABLE} when a file cannot be read.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML or JSON file ('-': stdin)")
    defaults = Settings()
    parser.add_argument("--driver", default=defaults.driver_name,
                        help="driver name of the opaque configs (default: %(default)s)")
    parser.add_argument("--allowed-plugins", type=_plugins,
                        default=frozenset(defaults.allowed_plugins), metavar="TYPE,...",
                        help="the node's allowed CNI plugin types (default: the driver's: "
                             f"{','.join(defaults.allowed_plugins)})")
    parser.add_argument("--no-require-master", action="store_true",
                        help="the node runs with --require-master-is-allocated=false")
    parser.add_argument("--json", action="store_true",
                        help="print the findings as one JSON list instead of lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    docs: list[Document] = []
    unreadable = False
    for path in args.files:
        try:
            docs.extend(load_documents(path))
        except ConfigError as exc:
            sys.stderr.write(f"{exc}\n")
            unreadable = True
    policy = AdminPolicy(frozenset(args.allowed_plugins), not args.no_require_master)
    validator = Validator(args.driver, policy)
    findings = validator.run(docs)
    if args.json:
        sys.stdout.write(json.dumps([
            {"file": f.file, "kind": f.kind, "object": f.key, "path": f.path,
             "message": f.message, "severity": "warning" if f.warning else "error"}
            for f in findings], indent=2) + "\n")
    else:
        for finding in findings:
            sys.stdout.write(f"{finding}\n")
    errors = sum(not f.warning for f in findings)
    warnings = len(findings) - errors
    sys.stderr.write(f"cnidra validate: {validator.checked} objects checked, {errors} errors, "
                     f"{warnings} warnings\n")
    if unreadable:
        return EXIT_UNREADABLE
    return EXIT_INVALID if errors else EXIT_OK
