"""Device health from snapshots (pure): the rules, the messages, and when ``since`` moves.

Rules, per interface of the latest snapshot:

* administratively down -> UNHEALTHY "administratively down"; no carrier -> UNHEALTHY "no carrier"
* operstate ``up``, or ``unknown`` with carrier -> HEALTHY "up"; a device that can carry
  virtual interfaces (a macvlan master, a bridge port…) also needs its carrier to be readable
* operstate ``unknown`` without a carrier reading -> UNKNOWN "state cannot be read"
* any other operstate (``down``, ``lowerlayerdown``, ``dormant``, ``notpresent``…) -> UNHEALTHY
* a failed scan turns every present interface UNKNOWN "state cannot be read"

An interface that leaves the snapshot stays listed, UNHEALTHY "eth1: interface disappeared at
10:42:03Z", for ``retention`` seconds (then it is dropped at the next scan) so that the kubelet
sees the disappearance even when it reconnects a little later; if it comes back it is assessed
afresh. One that still exists but is now excluded (it became a default-route uplink) says
"eth1: no longer published (excluded) at …" instead.

``since`` is the time health last changed; the time in a message is when its cause began.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cnidra.model.devices import Device, DeviceHealth, Health, Snapshot, device_name


def clock_text(t: float) -> str:
    """``10:42:03Z`` (UTC) for unix seconds ``t``."""
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%SZ")


def assess(dev: Device) -> tuple[Health, str]:
    """Health and its cause in a few words."""
    if not dev.admin_up:
        return Health.UNHEALTHY, "administratively down"
    if dev.carrier is False:
        return Health.UNHEALTHY, "no carrier"
    if dev.oper_state == "up" or (dev.oper_state == "unknown" and dev.carrier is True):
        if dev.can_carry_virtual_interfaces and dev.carrier is None:
            return Health.UNKNOWN, "carrier cannot be read"
        return Health.HEALTHY, "up"
    if dev.oper_state == "unknown":
        return Health.UNKNOWN, "state cannot be read"
    return Health.UNHEALTHY, f"operstate {dev.oper_state}"


@dataclass(frozen=True, slots=True)
class _Entry:
    if_name: str
    health: Health
    cause: str
    since: float  # last change of health
    cause_since: float  # last change of cause
    gone_at: float | None = None

    def view(self) -> DeviceHealth:
        name = self.if_name
        if self.gone_at is not None and self.cause == "excluded":
            message = f"{name}: no longer published (excluded) at {clock_text(self.gone_at)}"
        elif self.gone_at is not None:
            message = f"{name}: interface disappeared at {clock_text(self.gone_at)}"
        elif self.health is Health.HEALTHY:
            message = f"{name}: {self.cause}"
        else:
            message = f"{name}: {self.cause} since {clock_text(self.cause_since)}"
        return DeviceHealth(device_name(name), self.health, message, self.since)


def _moved(prev: _Entry | None, health: Health, cause: str, now: float) -> _Entry:
    """The entry after an observation, keeping ``since`` when nothing changed."""
    if prev is None:
        return _Entry("", health, cause, now, now)
    since = prev.since if prev.health == health else now
    cause_since = prev.cause_since if prev.cause == cause and prev.health == health else now
    return replace(prev, health=health, cause=cause, since=since, cause_since=cause_since,
                   gone_at=None)


class HealthTracker:
    """Health of the published interfaces, updated from each snapshot (pure, no clock)."""

    def __init__(self, retention: float = 300.0) -> None:
        self.retention = retention
        self._entries: dict[str, _Entry] = {}
        self._view: list[DeviceHealth] = []

    def view(self) -> list[DeviceHealth]:
        """The complete list, sorted by device name."""
        return list(self._view)

    def _commit(self, entries: dict[str, _Entry]) -> bool:
        self._entries = entries
        view = sorted((e.view() for e in entries.values()), key=lambda h: h.device)
        changed = view != self._view
        self._view = view
        return changed

    def observe(self, snapshot: Snapshot, now: float) -> bool:
        """Take a new snapshot into account; True when the reported list changed."""
        entries: dict[str, _Entry] = {}
        for dev in snapshot.devices:
            health, cause = assess(dev)
            entry = _moved(self._entries.get(dev.if_name), health, cause, now)
            entries[dev.if_name] = replace(entry, if_name=dev.if_name)
        for name, prev in self._entries.items():
            if name in entries:
                continue
            if prev.gone_at is None:
                cause = "excluded" if name in snapshot.excluded else "disappeared"
                gone = _moved(prev, Health.UNHEALTHY, cause, now)
                entries[name] = replace(gone, gone_at=now)
            elif now - prev.gone_at < self.retention:
                entries[name] = prev
        return self._commit(entries)

    def unreadable(self, now: float) -> bool:
        """A scan failed: present interfaces become UNKNOWN. True when the list changed."""
        entries = {
            name: e if e.gone_at is not None else replace(
                _moved(e, Health.UNKNOWN, "state cannot be read", now), if_name=name)
            for name, e in self._entries.items()
        }
        return self._commit(entries)
