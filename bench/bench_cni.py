"""ADD/DEL of macvlan + host-local through ``cnidra.cni`` vs. exec'ing the plugin directly.

Both sides run the same plugin with the same environment and stdin, through asyncio
subprocesses, interleaved in one run. ``cnidra.cni`` additionally resolves the plugin, builds the
input, parses and converts the result and writes/reads/removes the libcni cache (atomic
rename, no fsync, as libcni).

    python -m bench.bench_cni [-n 30] [--cni-version 1.0.0|1.1.0]   (root: makes a netns + veth)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from cnidra.cni import CNIRuntime, RuntimeConf, parse_conflist

BIN_DIRS = ["/usr/lib/cni"]


_Op = Callable[[], Awaitable[object]]


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


async def raw_exec(path: str, env: dict[str, str], stdin: bytes) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        path, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        raise RuntimeError(f"raw exec failed: {out!r} {err!r}")
    return out


def cni_env(verb: str, cid: str, netns: str, ifname: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CNI_COMMAND": verb, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
                "CNI_ARGS": "", "CNI_IFNAME": ifname, "CNI_PATH": ":".join(BIN_DIRS)})
    return env


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(samples: list[float], op: Callable[[], Awaitable[object]]) -> None:
    start = time.perf_counter()
    await op()
    samples.append((time.perf_counter() - start) * 1000)


async def bench(n: int, version: str, tag: str, parent: str, netns: str, tmp: str) -> None:
    data_dir = str(Path(tmp) / "leases")
    plugin: dict[str, object] = {
        "type": "macvlan", "master": parent, "mode": "bridge",
        "ipam": {"type": "host-local", "subnet": "198.18.250.0/24", "dataDir": data_dir},
    }
    net = parse_conflist(json.dumps({"cniVersion": version, "name": f"bench-{tag}",
                                     "plugins": [plugin]}))
    runtime = CNIRuntime(BIN_DIRS, cache_dir=str(Path(tmp) / "cache"))
    # the raw side gets exactly what the runtime sends (at the version the plugin speaks)
    wire = "1.0.0" if version == "1.1.0" else version
    plugin_conf = plugin | {"name": net.name, "cniVersion": wire}
    path = str(Path(BIN_DIRS[0]) / "macvlan")
    ours_add: list[float] = []
    ours_del: list[float] = []
    raw_add: list[float] = []
    raw_del: list[float] = []
    rt = RuntimeConf("warmup", netns, "net1")
    await runtime.add(net, rt)  # warm-up (and, for 1.1.0, the one-time negotiation)
    await runtime.delete(net, rt)
    for i in range(n):
        rt = RuntimeConf(f"ours{i}", netns, "net1")

        async def our_add(rt: RuntimeConf = rt) -> None:
            await runtime.add(net, rt)

        async def our_del(rt: RuntimeConf = rt) -> None:
            await runtime.delete(net, rt)

        cid = f"raw{i}"
        add_in = json.dumps(plugin_conf, separators=(",", ":")).encode()
        result: dict[str, object] = {}

        async def add(cid: str = cid, add_in: bytes = add_in,
                      result: dict[str, object] = result) -> None:
            out = await raw_exec(path, cni_env("ADD", cid, netns, "net1"), add_in)
            result.update(json.loads(out))

        async def delete(cid: str = cid, result: dict[str, object] = result) -> None:
            body = json.dumps(plugin_conf | {"prevResult": result}, separators=(",", ":"))
            await raw_exec(path, cni_env("DEL", cid, netns, "net1"), body.encode())

        sides: list[tuple[list[float], _Op, list[float], _Op]] = [
            (ours_add, our_add, ours_del, our_del), (raw_add, add, raw_del, delete)]
        for adds, add_op, dels, del_op in sides[i % 2:] + sides[:i % 2]:  # alternate order
            await timed(adds, add_op)
            await timed(dels, del_op)

    def row(label: str, ours: list[float], raw: list[float]) -> None:
        print(f"{label:8} cnidra p50 {pct(ours, .5):7.2f} ms p90 {pct(ours, .9):7.2f} ms | "
              f"raw p50 {pct(raw, .5):7.2f} ms p90 {pct(raw, .9):7.2f} ms | "
              f"p50 ratio {statistics.median(ours) / statistics.median(raw):.3f} | paired "
              f"{statistics.median(o / r for o, r in zip(ours, raw, strict=True)):.3f}")

    print(f"macvlan+host-local, cniVersion {version}, n={n}, interleaved (order alternates)")
    row("ADD", ours_add, raw_add)
    row("DEL", ours_del, raw_del)
    row("ADD+DEL", [a + d for a, d in zip(ours_add, ours_del, strict=True)],
        [a + d for a, d in zip(raw_add, raw_del, strict=True)])
    print("target: p50 ratio <= 1.10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=30, help="iterations (default: %(default)s)")
    parser.add_argument("--cni-version", default="1.0.0", choices=["1.0.0", "1.1.0"])
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:6]
    parent, peer, ns = f"bnp{tag}", f"bnq{tag}", f"bench-{tag}"
    sh("ip", "link", "add", parent, "type", "veth", "peer", "name", peer)
    try:
        sh("ip", "link", "set", parent, "up")
        sh("ip", "netns", "add", ns)
        with tempfile.TemporaryDirectory(prefix="bench-cni-") as tmp:
            asyncio.run(bench(args.n, args.cni_version, tag, parent, f"/var/run/netns/{ns}", tmp))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", parent], check=False, capture_output=True)


if __name__ == "__main__":
    main()
