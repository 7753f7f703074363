"""Wire types <-> our records, for DRA v1/v1beta1 and the health stream. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cnidra.kubelet._proto import dra_v1_pb2, dra_v1beta1_pb2, health_v1alpha1_pb2
from cnidra.model.claims import ClaimRef, PrepareOutcome
from cnidra.model.devices import DeviceHealth

MAX_HEALTH_MESSAGE = 1024


def claim_refs(claims: Iterable[Any]) -> tuple[list[ClaimRef], dict[str, str]]:
    """The request's claims as refs, and an error per UID for claims that cannot be asked for.

    ``claims`` are v1 or v1beta1 ``Claim`` messages (same fields). A claim without a UID is
    answered under the key ``""``.
    """
    refs: list[ClaimRef] = []
    errors: dict[str, str] = {}
    for index, claim in enumerate(claims):
        missing = [f for f in ("namespace", "name", "uid") if not getattr(claim, f)]
        if missing:
            errors[claim.uid] = (
                f"claims[{index}]: {', '.join(missing)} must not be empty "
                f"(got namespace={claim.namespace!r} name={claim.name!r} uid={claim.uid!r})"
            )
            continue
        refs.append(ClaimRef(namespace=claim.namespace, name=claim.name, uid=claim.uid))
    return refs, errors


def _base_request(name: str) -> str:
    return name.split("/", 1)[0]


def prepare_response_v1(
    outcomes: Mapping[str, PrepareOutcome],
) -> dra_v1_pb2.NodePrepareResourcesResponse:
    response = dra_v1_pb2.NodePrepareResourcesResponse()
    for uid, outcome in outcomes.items():
        entry = response.claims[uid]
        if outcome.error:
            entry.error = outcome.error
            continue
        for device in outcome.devices:
            wire = entry.devices.add(
                request_names=[_base_request(n) for n in device.request_names],
                pool_name=device.pool_name, device_name=device.device_name,
                cdi_device_ids=list(device.cdi_device_ids),
            )
            if device.share_id:
                wire.share_id = device.share_id
    return response


def prepare_response_v1beta1(
    outcomes: Mapping[str, PrepareOutcome],
) -> dra_v1beta1_pb2.NodePrepareResourcesResponse:
    """As v1 without ``share_id`` (v1beta1 has no field for it)."""
    response = dra_v1beta1_pb2.NodePrepareResourcesResponse()
    for uid, outcome in outcomes.items():
        entry = response.claims[uid]
        if outcome.error:
            entry.error = outcome.error
            continue
        for device in outcome.devices:
            entry.devices.add(
                request_names=[_base_request(n) for n in device.request_names],
                pool_name=device.pool_name, device_name=device.device_name,
                cdi_device_ids=list(device.cdi_device_ids),
            )
    return response


def unprepare_response_v1(errors: Mapping[str, str]) -> dra_v1_pb2.NodeUnprepareResourcesResponse:
    response = dra_v1_pb2.NodeUnprepareResourcesResponse()
    for uid, error in errors.items():
        response.claims[uid].error = error
    return response


def unprepare_response_v1beta1(
    errors: Mapping[str, str],
) -> dra_v1beta1_pb2.NodeUnprepareResourcesResponse:
    response = dra_v1beta1_pb2.NodeUnprepareResourcesResponse()
    for uid, error in errors.items():
        response.claims[uid].error = error
    return response


def health_response(
    devices: Sequence[DeviceHealth], *, pool: str, now: float, timeout_seconds: int,
) -> health_v1alpha1_pb2.NodeWatchResourcesResponse:
    """The complete list; ``last_updated_time`` is when this list was confirmed (``now``)."""
    response = health_v1alpha1_pb2.NodeWatchResourcesResponse()
    for item in sorted(devices, key=lambda d: d.device):
        response.devices.add(
            device=health_v1alpha1_pb2.DeviceIdentifier(pool_name=pool, device_name=item.device),
            health=health_v1alpha1_pb2.HealthStatus.ValueType(int(item.health)),
            last_updated_time=int(now),
            health_check_timeout_seconds=timeout_seconds,
            message=item.message[:MAX_HEALTH_MESSAGE],
        )
    return response
