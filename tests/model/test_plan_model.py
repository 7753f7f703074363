"""The plan dataclasses: frozen, with the derived names attach relies on."""

from __future__ import annotations

import dataclasses

import pytest

from cnidra.model.claims import PreparedDevice
from cnidra.model.plan import Attachment, ClaimPlan, PlannedInterface


def interface(if_name: str, request: str = "net/fast") -> PlannedInterface:
    return PlannedInterface(
        claim_uid="u", claim_namespace="ns", claim_name="c", request=request, driver="d",
        pool="p", device="eth1", device_if_name="eth1", share_id=None, admin_access=False,
        if_name=if_name, network_name="n", cni_version="1.0.0", conflist=b"{}",
        config_source="FromClaim", if_name_source="FromClass",
    )


def test_plan_queries() -> None:
    plan = ClaimPlan("u", "ns", "c", "digest", ("pod",), (interface("net1"), interface("net2")),
                     (PreparedDevice(("net",), "p", "eth1"),))
    assert plan.key == "ns/c"
    assert plan.if_names == ("net1", "net2")
    assert plan.interface("net2") == interface("net2")
    assert plan.interface("net3") is None
    assert plan.interfaces[0].base_request == "net"


def test_frozen() -> None:
    att = Attachment("u", "net1", "pod", "sb", "/run/netns/x", "n")
    assert att.key == ("u", "net1", "sb")
    with pytest.raises(dataclasses.FrozenInstanceError):
        att.if_name = "x"  # type: ignore[misc]
