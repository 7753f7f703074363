"""Health rules, messages and ``since`` (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cnidra.inventory import assess
from cnidra.inventory._health import HealthTracker, clock_text
from cnidra.model.devices import Device, Health, Snapshot

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def dev(name: str = "eth1", **kw: object) -> Device:
    base = Device(if_name=name, index=5, oper_state="up", admin_up=True, carrier=True,
                  kind="", virtual=False)
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "health", "cause"),
    [
        ({}, Health.HEALTHY, "up"),
        ({"kind": "vxlan", "oper_state": "unknown"}, Health.HEALTHY, "up"),
        ({"admin_up": False, "oper_state": "down"}, Health.UNHEALTHY, "administratively down"),
        ({"carrier": False, "oper_state": "lowerlayerdown"}, Health.UNHEALTHY, "no carrier"),
        ({"oper_state": "unknown", "carrier": False}, Health.UNHEALTHY, "no carrier"),
        ({"oper_state": "dormant"}, Health.UNHEALTHY, "operstate dormant"),
        ({"oper_state": "unknown", "carrier": None}, Health.UNKNOWN, "state cannot be read"),
        # a macvlan master must have a readable carrier; a macvlan itself need not
        ({"carrier": None}, Health.UNKNOWN, "carrier cannot be read"),
        ({"carrier": None, "kind": "macvlan"}, Health.HEALTHY, "up"),
    ],
)
def test_rules(fields: dict[str, object], health: Health, cause: str) -> None:
    assert assess(replace(dev(), **fields)) == (health, cause)  # type: ignore[arg-type]


def test_clock_text_is_utc() -> None:
    assert clock_text(T0 + 3723) == "09:02:03Z"


def snap(*devices: Device) -> Snapshot:
    return Snapshot(devices=tuple(devices), taken_at=0.0)


def test_lifecycle_messages_and_since() -> None:
    tracker = HealthTracker(retention=60.0)
    assert tracker.observe(snap(dev(), dev("eth2")), T0)
    (h1, h2) = tracker.view()
    assert (h1.device, h1.health, h1.message, h1.since) == ("eth1", Health.HEALTHY, "eth1: up", T0)
    assert h2.device == "eth2"

    assert not tracker.observe(snap(dev(), dev("eth2")), T0 + 1)  # nothing changed
    assert tracker.view()[0].since == T0

    assert tracker.observe(snap(dev(carrier=False, oper_state="lowerlayerdown"), dev("eth2")),
                           T0 + 10)
    h1 = tracker.view()[0]
    assert h1.health is Health.UNHEALTHY and h1.since == T0 + 10
    assert h1.message == "eth1: no carrier since 08:00:10Z"

    # a new cause while still unhealthy: message moves, since stays
    assert tracker.observe(snap(dev(admin_up=False, oper_state="down"), dev("eth2")), T0 + 20)
    h1 = tracker.view()[0]
    assert h1.message == "eth1: administratively down since 08:00:20Z" and h1.since == T0 + 10

    assert tracker.observe(snap(dev(), dev("eth2")), T0 + 30)
    assert tracker.view()[0] == replace(h1, health=Health.HEALTHY, message="eth1: up",
                                        since=T0 + 30)

    assert tracker.observe(snap(dev()), T0 + 40)
    gone = tracker.view()[1]
    assert (gone.device, gone.health, gone.since) == ("eth2", Health.UNHEALTHY, T0 + 40)
    assert gone.message == "eth2: interface disappeared at 08:00:40Z"

    assert not tracker.observe(snap(dev()), T0 + 99)  # kept for the retention period
    assert tracker.observe(snap(dev()), T0 + 100)  # then dropped
    assert [h.device for h in tracker.view()] == ["eth1"]


def test_reappearing_interface_is_assessed_afresh() -> None:
    tracker = HealthTracker()
    tracker.observe(snap(dev()), T0)
    tracker.observe(snap(), T0 + 1)
    assert tracker.view()[0].health is Health.UNHEALTHY
    tracker.observe(snap(dev()), T0 + 2)
    assert tracker.view()[0].health is Health.HEALTHY
    assert tracker.view()[0].since == T0 + 2
    assert tracker.view()[0].message == "eth1: up"


def test_unreadable_scan_makes_present_devices_unknown() -> None:
    tracker = HealthTracker()
    tracker.observe(snap(dev(), dev("eth2")), T0)
    tracker.observe(snap(dev()), T0 + 1)  # eth2 gone
    assert tracker.unreadable(T0 + 2)
    eth1, eth2 = tracker.view()
    assert eth1.health is Health.UNKNOWN
    assert eth1.message == "eth1: state cannot be read since 08:00:02Z"
    assert eth2.message == "eth2: interface disappeared at 08:00:01Z"
    assert not tracker.unreadable(T0 + 3)


def test_device_names_follow_the_model_mapping() -> None:
    tracker = HealthTracker()
    tracker.observe(snap(dev("enp0s3.100")), T0)
    (h,) = tracker.view()
    assert h.device.startswith("enp0s3-100-") and h.message.startswith("enp0s3.100: ")


def test_interface_that_becomes_excluded_says_so() -> None:
    tracker = HealthTracker()
    tracker.observe(snap(dev()), T0)
    assert tracker.observe(Snapshot(devices=(), excluded=("eth1", "lo")), T0 + 1)
    (h,) = tracker.view()
    assert h.health is Health.UNHEALTHY
    assert h.message == "eth1: no longer published (excluded) at 08:00:01Z"
