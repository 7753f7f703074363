"""``compute_plan``: from an allocated claim to its attach plan. Pure and deterministic.

Rules (also in the package docstring):

* Only ``status.allocation.devices.results`` of our driver count; the configs are the ones the
  allocation copied into ``status.allocation.devices.config`` (class configs ``FromClass``,
  then claim configs ``FromClaim``). Configs of other drivers are ignored; every config of ours
  must parse, even one that targets nothing of ours.
* A config targets a result when its ``requests`` is empty, names the result's request, or names
  the base of a subrequest (``req`` matches ``req/sub``).
* Per result, at most one ``kind: CNI`` config per source and at most one ``kind: CNIPolicy``
  (class only). The claim wins over the class **per top-level field**: ``ifName`` and ``config``
  are each taken from the claim config when it sets them, else from the class config. ``config``
  is replaced whole, never merged.
* ``ifName`` and ``config`` are required after that merge: there is no default name, because a
  generated ``net1`` would silently collide across the claims of one pod.
* ``ifName`` is unique within the claim and not reserved by the policy; the conflist must
  validate and obey the admin policy narrowed by the class's ``CNIPolicy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnidra.claims._claim import (
    FROM_CLAIM,
    FROM_CLASS,
    AllocatedConfig,
    AllocatedDevice,
    ClaimView,
    canonical_json,
    view_claim,
)
from cnidra.claims._conflist import parse_conflist
from cnidra.claims._errors import ClaimConfigError
from cnidra.claims._policy import (
    AdminPolicy,
    DeviceIfNameResolver,
    check_conflist,
    check_if_name_allowed,
    identity_resolver,
)
from cnidra.errors import ConfigError
from cnidra.model.claim_config import CNIConfig, CNIPolicyConfig, OpaqueConfig, parse_opaque
from cnidra.model.claims import PreparedDevice
from cnidra.model.plan import ClaimPlan, ConfigSource, PlannedInterface

_Parsed = tuple[AllocatedConfig, OpaqueConfig]


def compute_plan(
    claim: Mapping[str, Any], device_classes: Mapping[str, Mapping[str, Any]], *, driver: str,
    policy: AdminPolicy | None = None, device_if_name: DeviceIfNameResolver = identity_resolver,
) -> ClaimPlan:
    """The attach plan of one allocated claim (any API version).

    ``device_classes`` (name → DeviceClass object) is only used to name the DeviceClass entry a
    faulty class config came from; the configs themselves are read from the allocation.
    Raises :class:`ClaimConfigError` (a ``ConfigError``) naming the claim and the field path.
    """
    key = _claim_key(claim)
    try:
        view = view_claim(claim)
        return _plan(view, device_classes, driver, policy or AdminPolicy(), device_if_name)
    except ConfigError as exc:
        raise ClaimConfigError(exc.message, exc.path, claim=key) from exc


def _plan(
    view: ClaimView, classes: Mapping[str, Mapping[str, Any]], driver: str, policy: AdminPolicy,
    resolve: DeviceIfNameResolver,
) -> ClaimPlan:
    if not view.allocated:
        raise ConfigError("is not set: the claim is not allocated yet", "status.allocation")
    parsed = [_parse(cfg, view, classes) for cfg in view.configs if cfg.driver == driver]
    ours = [r for r in view.results if r.driver == driver]
    ctx = _Context(view, classes, driver, policy, resolve)
    interfaces = [_interface(r, parsed, ctx) for r in ours]
    _check_unique(interfaces, parsed)
    devices = tuple(
        PreparedDevice((r.request.split("/", 1)[0],), r.pool, r.device, (), r.share_id)
        for r in ours
    )
    return ClaimPlan(
        view.uid, view.namespace, view.name, view.allocation_digest, view.pod_uids,
        tuple(interfaces), devices,
    )


def _parse(
    cfg: AllocatedConfig, view: ClaimView, classes: Mapping[str, Mapping[str, Any]]
) -> _Parsed:
    if cfg.source not in (FROM_CLASS, FROM_CLAIM):
        raise ConfigError(
            f"unknown config source {cfg.source!r} (expected FromClass or FromClaim)",
            f"status.allocation.devices.config[{cfg.index}].source",
        )
    try:
        model = parse_opaque(cfg.parameters, cfg.path)
    except ConfigError as exc:
        raise _blame(exc, cfg, view, classes) from exc
    if isinstance(model, CNIPolicyConfig) and cfg.source == FROM_CLAIM:
        raise ConfigError(
            "CNIPolicy is an admin setting honoured only in a DeviceClass config; remove it "
            "from the claim", f"{cfg.path}.kind",
        )
    return cfg, model


@dataclass(frozen=True, slots=True)
class _Context:
    view: ClaimView
    classes: Mapping[str, Mapping[str, Any]]
    driver: str
    policy: AdminPolicy
    resolve: DeviceIfNameResolver


def _interface(result: AllocatedDevice, parsed: list[_Parsed], ctx: _Context) -> PlannedInterface:
    view, classes, driver, policy = ctx.view, ctx.classes, ctx.driver, ctx.policy
    chosen: dict[tuple[str, str], _Parsed] = {}
    for cfg, model in parsed:
        if not cfg.targets(result.request):
            continue
        slot = (cfg.source, model.kind)
        if slot in chosen:
            first = chosen[slot][0]
            origin = "the claim" if cfg.source == FROM_CLAIM else "the DeviceClass"
            raise ConfigError(
                f"request {result.request!r} gets two {model.kind} configs of driver {driver!r} "
                f"from {origin} ({first.path} and this one); keep one", cfg.path,
            )
        chosen[slot] = (cfg, model)
    class_cni = chosen.get((FROM_CLASS, "CNI"))
    claim_cni = chosen.get((FROM_CLAIM, "CNI"))
    policy_cfg = chosen.get((FROM_CLASS, "CNIPolicy"))
    where = f"status.allocation.devices.results[{result.index}]"
    if class_cni is None and claim_cni is None:
        raise ConfigError(
            f"device {result.device!r} of request {result.request!r} has no config of kind CNI: "
            f"add one to spec.devices.config with opaque.driver {driver!r} and requests "
            f"[{result.request.split('/', 1)[0]!r}]", where,
        )
    if_name, if_cfg = _pick(claim_cni, class_cni, "if_name")
    config, conf_cfg = _pick(claim_cni, class_cni, "config")
    blame_to = claim_cni or class_cni
    assert blame_to is not None
    if if_name is None:
        raise ConfigError(
            "is required: name the pod interface for this device (e.g. net1)",
            f"{blame_to[0].path}.ifName",
        )
    if config is None:
        raise ConfigError(
            "is required: give the CNI network configuration list for this device",
            f"{blame_to[0].path}.config",
        )
    assert if_cfg is not None and conf_cfg is not None
    check_if_name_allowed(if_name, policy, f"{if_cfg.path}.ifName")
    narrowing = policy_cfg[1] if policy_cfg else None
    assert narrowing is None or isinstance(narrowing, CNIPolicyConfig)
    device_if = ctx.resolve(result.device)
    try:
        conflist = parse_conflist(config)
        check_conflist(
            conflist, policy.narrowed(narrowing), device=result.device,
            device_if_name=device_if, narrowed_by_class=narrowing is not None,
        )
    except ConfigError as exc:
        raise _blame(exc.under(f"{conf_cfg.path}.config"), conf_cfg, view, classes) from exc
    return PlannedInterface(
        claim_uid=view.uid, claim_namespace=view.namespace, claim_name=view.name,
        request=result.request, driver=result.driver, pool=result.pool, device=result.device,
        device_if_name=device_if or result.device, share_id=result.share_id,
        admin_access=result.admin_access, if_name=if_name, network_name=conflist.name,
        cni_version=conflist.cni_version, conflist=canonical_json(config),
        config_source=_source(conf_cfg), if_name_source=_source(if_cfg),
    )


def _pick(
    claim_cni: _Parsed | None, class_cni: _Parsed | None, field: str
) -> tuple[Any, AllocatedConfig | None]:
    for entry in (claim_cni, class_cni):
        if entry is not None:
            model = entry[1]
            assert isinstance(model, CNIConfig)
            value = getattr(model, field)
            if value is not None:
                return value, entry[0]
    return None, None


def _source(cfg: AllocatedConfig) -> ConfigSource:
    return "FromClaim" if cfg.source == FROM_CLAIM else "FromClass"


def _check_unique(interfaces: list[PlannedInterface], parsed: list[_Parsed]) -> None:
    seen: dict[str, PlannedInterface] = {}
    for itf in interfaces:
        other = seen.setdefault(itf.if_name, itf)
        if other is itf:
            continue
        path = next(
            (f"{cfg.path}.ifName" for cfg, model in parsed
             if isinstance(model, CNIConfig) and model.if_name == itf.if_name
             and cfg.targets(itf.request)),
            "spec.devices.config",
        )
        raise ConfigError(
            f"{itf.if_name!r} is used by device {other.device!r} (request {other.request!r}) and "
            f"device {itf.device!r} (request {itf.request!r}); pod interface names must be unique "
            "(a config applies to every device of the requests it targets: use one request per "
            "interface)", path,
        )


def _blame(
    exc: ConfigError, cfg: AllocatedConfig, view: ClaimView,
    classes: Mapping[str, Mapping[str, Any]],
) -> ConfigError:
    """Tell a tenant when the faulty config comes from a DeviceClass (and which entry)."""
    if cfg.source != FROM_CLASS:
        return exc
    names = sorted({view.request_classes[r] for r in cfg.requests if r in view.request_classes})
    origin = f"DeviceClass {names[0]!r}" if len(names) == 1 else "the request's DeviceClass"
    if len(names) == 1:
        configs = ((classes.get(names[0]) or {}).get("spec") or {}).get("config") or []
        for j, entry in enumerate(configs if isinstance(configs, list) else []):
            if isinstance(entry, Mapping) and entry.get("opaque") == _opaque_of(cfg):
                origin += f" (spec.config[{j}])"
                break
    return ConfigError(f"{exc.message} [from {origin}: ask the cluster admin]", exc.path)


def _opaque_of(cfg: AllocatedConfig) -> dict[str, Any]:
    return {"driver": cfg.driver, "parameters": cfg.parameters}


def _claim_key(claim: Mapping[str, Any]) -> str:
    meta = claim.get("metadata")
    if isinstance(meta, Mapping):
        return f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"
    return "?/?"


def check_pod_interfaces(plans: Sequence[ClaimPlan]) -> None:
    """Raise ``ConfigError`` when two claims of one pod ask for the same pod interface name.

    Attach calls this with ``ClaimState.plans_for_pod(pod_uid)`` before any ADD.
    """
    owner: dict[str, ClaimPlan] = {}
    for plan in plans:
        for if_name in plan.if_names:
            first = owner.setdefault(if_name, plan)
            if first is not plan:
                raise ConfigError(
                    f"claims {first.key} and {plan.key} of the pod both ask for interface "
                    f"{if_name!r}; pod interface names must be unique across the pod's claims",
                    "opaque.parameters.ifName",
                )
