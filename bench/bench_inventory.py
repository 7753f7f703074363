"""One interface scan (netlink dump + sysfs) of N veth pairs in a fresh network namespace.

The scan runs in a child started with ``ip netns exec`` (so /sys belongs to that namespace, as
for the driver). Reported per N: the full ``scan_blocking`` (what every rescan costs), its
netlink dump alone, and for scale ``ip -json link`` + ``ip -json addr`` exec'd in the same
namespace (the cheapest way a shell script would get less than half of the same facts).

    python -m bench.bench_inventory [-n 20] [--links 16,128,512]   (root: makes a netns)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def child(rounds: int) -> None:
    from cnidra.inventory import scan_blocking  # noqa: PLC0415
    from cnidra.inventory._netlink import dump  # noqa: PLC0415

    results: dict[str, list[float]] = {"scan": [], "dump": [], "ip": []}
    devices = 0
    for _ in range(rounds):
        start = time.perf_counter()
        snap = scan_blocking(sysfs=Path("/sys"), include_default_route_uplink=False,
                             clock=time.time)
        results["scan"].append((time.perf_counter() - start) * 1000)
        devices = len(snap.devices)
        start = time.perf_counter()
        dump()
        results["dump"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        subprocess.run(["ip", "-json", "link"], check=True, capture_output=True)
        subprocess.run(["ip", "-json", "addr"], check=True, capture_output=True)
        results["ip"].append((time.perf_counter() - start) * 1000)
    print(json.dumps({"devices": devices, **results}))


def run(links: int, rounds: int) -> dict[str, Any]:
    ns = f"cnbench-{os.getpid()}-{uuid.uuid4().hex[:4]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        pairs = links // 2
        cmds = "".join(
            f"link add b{i}a type veth peer name b{i}b\n"
            f"addr add 10.{i // 250}.{i % 250}.1/24 dev b{i}a\n"
            f"link set b{i}a up\nlink set b{i}b up\n"
            for i in range(pairs)
        )
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=cmds, text=True, check=True)
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "bench.bench_inventory",
             "--child", "-n", str(rounds)],
            check=True, capture_output=True, text=True,
        ).stdout
        return dict(json.loads(out))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="scans per size")
    parser.add_argument("--links", default="16,128,512", help="interfaces per namespace")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.n)
        return
    print(f"{'links':>6} {'scan p50':>9} {'p95':>7} {'dump p50':>9} {'ip exec p50':>12}  "
          "scan/ip")
    for links in (int(x) for x in args.links.split(",")):
        r = run(links, args.n)
        scan, dmp, ipx = ([float(x) for x in r[k]] for k in ("scan", "dump", "ip"))
        print(f"{r['devices']:>6} {statistics.median(scan):>7.1f}ms {pct(scan, 0.95):>5.1f}ms "
              f"{statistics.median(dmp):>7.1f}ms {statistics.median(ipx):>10.1f}ms  "
              f"{statistics.median(scan) / statistics.median(ipx):>6.2f}x")


if __name__ == "__main__":
    main()
