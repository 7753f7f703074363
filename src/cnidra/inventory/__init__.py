"""Interface discovery and watching: the node's network interfaces as pure ``Device`` snapshots
and their health.

Job:

* **scan** (worker thread): a pyroute2 netlink dump of links, addresses and main-table default
  routes, merged with sysfs (``/sys/class/net/<if>``: backing device, PCI address/vendor/device,
  driver, NUMA node, PCIe root, speed, SR-IOV PF totals / VF -> PF and index, RDMA device) into
  ``Device`` records sorted by interface name. Loopback is never published; interfaces carrying a
  v4 or v6 default route in the main table (the node's uplinks) are left out unless
  ``include_default_route_uplink``. Addresses are CIDRs as configured; IPv6 link-local
  (``fe80::/10``) addresses are skipped: every IPv6 interface has one, they say nothing about
  the network and would only churn snapshots.
* **watch** (``Inventory.run``, a root task): a non-blocking rtnetlink socket (link, address and
  default-route events) wakes the loop; a burst of events gives one scan ``coalesce_seconds``
  after its first event, never two scans closer than ``min_interval``, and at least one every
  ``poll_seconds``. Failed scans are retried with capped backoff; the last good snapshot stays.
* **publish**: ``subscribe()`` yields the current snapshot and then every one whose devices
  differ (latest-value: a slow consumer skips intermediate ones); ``device_health()`` /
  ``wait_health()`` feed the kubelet health stream (rules in ``_health``; an interface that
  disappeared stays listed UNHEALTHY "disappeared" for ``gone_retention`` seconds, 300 by default).

Limits:

* It reads the netns of the process and the sysfs mounted at ``sysfs``. ``/sys/class/net``
  shows the netns of whoever mounted ``/sys``: run the driver in the node's netns with a /sys
  mounted there (``ip netns exec`` does that); otherwise sysfs facts are missing and the
  interfaces look virtual.
* No CEL filtering here (publishing applies the operator's filter to published attributes) and
  no DRA naming or attributes beyond ``model.device_name``.
* Netlink events are wake-ups only; their content is never trusted (the next dump is the truth).
* A scan costs about 2 ms per interface, mostly pyroute2 decoding the link dump (measured with
  ``bench/bench_inventory.py``: ~25 ms for 16 links, ~0.2 s for 128, ~0.9 s for 512), in a
  worker thread; ``min_interval`` bounds how often a churning node pays it.
"""

from cnidra.inventory._errors import InventoryError
from cnidra.inventory._health import assess
from cnidra.inventory._inventory import Inventory
from cnidra.inventory._scan import scan_blocking
from cnidra.inventory._sysfs import SysfsFacts, read_sysfs

__all__ = ["Inventory", "InventoryError", "SysfsFacts", "assess", "read_sysfs", "scan_blocking"]
