"""When scans happen: coalescing, rate limiting, polling and backoff (pure, fake times)."""

from __future__ import annotations

import math

from cnidra.inventory._schedule import ScanSchedule


def started_at(t: float, *, coalesce: float = 0.5, min_interval: float = 1.0,
               poll: float = 60.0) -> ScanSchedule:
    s = ScanSchedule(coalesce=coalesce, min_interval=min_interval, poll=poll)
    s.started(t)
    s.finished(ok=True)
    return s


def test_first_scan_is_immediate() -> None:
    assert ScanSchedule().deadline() == -math.inf


def test_quiet_node_is_polled() -> None:
    s = started_at(100.0, poll=60.0)
    assert s.deadline() == 160.0


def test_burst_coalesces_from_its_first_event() -> None:
    s = started_at(100.0, coalesce=0.5, min_interval=1.0)
    s.event(105.0)
    for t in (105.1, 105.2, 105.45):  # later events of the burst do not push the scan out
        s.event(t)
    assert s.deadline() == 105.5


def test_rate_limited_right_after_a_scan() -> None:
    s = started_at(100.0, coalesce=0.5, min_interval=2.0)
    s.event(100.1)
    assert s.deadline() == 102.0  # not 100.6: at most one scan per min_interval


def test_scan_start_covers_pending_events() -> None:
    s = started_at(100.0)
    s.event(101.0)
    s.started(101.5)
    s.finished(ok=True)
    assert s.pending_since is None
    assert s.deadline() == 161.5


def test_failures_back_off_doubling_to_a_cap() -> None:
    s = ScanSchedule(min_interval=1.0, max_backoff=5.0)
    waits = []
    for t in (0.0, 1.0, 3.0, 7.0, 12.0):
        s.started(t)
        s.finished(ok=False)
        s.event(t + 0.01)  # events do not cut the backoff short
        waits.append(s.deadline() - t)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    s.started(17.0)
    s.finished(ok=True)
    assert s.failures == 0 and s.deadline() == 77.0


def test_zero_min_interval_still_backs_off() -> None:
    s = ScanSchedule(min_interval=0.0)
    s.started(0.0)
    s.finished(ok=False)
    assert s.deadline() > 0.0
