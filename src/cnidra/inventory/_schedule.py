"""When the watch loop scans next (pure; times are monotonic seconds).

* the first scan happens at once;
* an event starts a burst: the scan runs ``coalesce`` after the burst's first event (later
  events of the burst ride along, so constant churn cannot postpone it forever);
* never two scans closer than ``min_interval`` (start to start);
* without events, a scan every ``poll`` seconds as a safety net;
* after a failed scan, retries back off from ``min_interval`` doubling up to ``max_backoff``
  (events do not shorten the backoff).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScanSchedule:
    coalesce: float = 0.5
    min_interval: float = 1.0
    poll: float = 60.0
    max_backoff: float = 30.0
    last_scan: float | None = None  # start of the last attempt
    pending_since: float | None = None  # first event not covered by a scan yet
    failures: int = 0

    def event(self, now: float) -> None:
        if self.pending_since is None:
            self.pending_since = now

    def started(self, now: float) -> None:
        """A scan starts now: it covers every event seen so far."""
        self.last_scan = now
        self.pending_since = None

    def finished(self, *, ok: bool) -> None:
        self.failures = 0 if ok else self.failures + 1

    def backoff(self) -> float:
        if not self.failures:
            return 0.0
        base = max(self.min_interval, 0.1)
        return float(min(self.max_backoff, base * 2 ** (self.failures - 1)))

    def deadline(self) -> float:
        """The monotonic time the next scan is due (``-inf``: now)."""
        if self.last_scan is None:
            return float("-inf")
        if self.failures:
            return self.last_scan + self.backoff()
        if self.pending_since is not None:
            return max(self.pending_since + self.coalesce, self.last_scan + self.min_interval)
        return self.last_scan + self.poll
