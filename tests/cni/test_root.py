"""The runtime and ``cnidra cni`` against Debian's real CNI plugins in real network namespaces.

Debian's plugins (1.1.1) speak CNI up to 1.0.0: the 1.1.0 tests exercise version negotiation.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from cnidra.cli import main
from cnidra.cni import CNIRuntime, NetworkConfigList, RuntimeConf, _cache, _exec, parse_conflist
from cnidra.errors import CNIError
from support import unique

pytestmark = pytest.mark.root


def subnet() -> str:
    return f"198.18.{random.randint(0, 255)}.0/24"


def host_local(lease_dir: Path, sub: str | None = None) -> dict[str, Any]:
    return {"type": "host-local", "subnet": sub or subnet(), "dataDir": str(lease_dir)}


def macvlan_list(
    master: str, lease_dir: Path, *extra: dict[str, Any], version: str = "1.0.0",
    ipam: dict[str, Any] | None = None, name: str | None = None,
) -> NetworkConfigList:
    plugins = [{"type": "macvlan", "master": master, "mode": "bridge",
                "ipam": ipam or host_local(lease_dir)}, *extra]
    return parse_conflist(json.dumps({"cniVersion": version, "name": name or unique("net-"),
                                      "plugins": plugins}))


def leases(lease_dir: Path, net: NetworkConfigList) -> list[str]:
    """IP lease files host-local keeps for ``net`` (not its lock/last-reserved files)."""
    folder = lease_dir / net.name
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name[0].isdigit() and "." in p.name
                  and not p.name.startswith("last_reserved"))


def addrs(netns: str, ifname: str) -> list[str]:
    out = subprocess.run(["ip", "-n", netns, "-j", "addr", "show", "dev", ifname],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return []
    return [f"{a['local']}/{a['prefixlen']}" for link in json.loads(out.stdout)
            for a in link.get("addr_info", []) if a.get("scope") == "global"]


def link(netns: str, ifname: str) -> dict[str, Any] | None:
    out = subprocess.run(["ip", "-n", netns, "-j", "link", "show", "dev", ifname],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    found: list[dict[str, Any]] = json.loads(out.stdout)
    return found[0] if found else None


NetnsFactory = Callable[[str], str]


def rt_for(
    ns: str, ifname: str = "net1", capability_args: Mapping[str, Any] | None = None
) -> RuntimeConf:
    return RuntimeConf(unique("ctr"), f"/var/run/netns/{ns}", ifname,
                       (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "default"),
                        ("K8S_POD_NAME", "web")), capability_args or {})


async def test_macvlan_host_local_add_check_del_twice(
    runtime: CNIRuntime, netns: NetnsFactory, veth_parent: str, lease_dir: Path
) -> None:
    net = macvlan_list(veth_parent, lease_dir)
    ns = netns("cni")
    rt = rt_for(ns)
    result = await runtime.add(net, rt)
    try:
        assert result.cni_version == "1.0.0"
        assert result.interfaces[0].name == "net1"
        assert result.interfaces[0].sandbox == rt.netns
        assert addrs(ns, "net1") == [result.ips[0].address]
        assert leases(lease_dir, net) == [result.ips[0].address.split("/")[0]]
        cache_file = Path(runtime.cache_dir) / "results" / f"{net.name}-{rt.container_id}-net1"
        assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(cache_file.parent.stat().st_mode) == 0o700
        cached = json.loads(cache_file.read_bytes())
        assert cached["kind"] == "cniCacheV1"
        assert base64.b64decode(cached["config"]) == net.bytes
        assert cached["cniArgs"][1] == ["K8S_POD_NAMESPACE", "default"]
        assert cached["result"]["ips"][0]["address"] == result.ips[0].address
        await runtime.check(net, rt)
    finally:
        await runtime.delete(net, rt)
    assert link(ns, "net1") is None
    assert leases(lease_dir, net) == []
    assert not cache_file.exists()
    await runtime.delete(net, rt)  # second DEL: a no-op


async def test_bridge_host_local(
    runtime: CNIRuntime, netns: NetnsFactory, links: list[str], lease_dir: Path
) -> None:
    bridge = unique("cbr", 8)
    links.append(bridge)
    net = parse_conflist({"cniVersion": "1.0.0", "name": unique("br-"), "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
         "ipam": host_local(lease_dir)}]})
    ns = netns("cni")
    rt = rt_for(ns, "eth0")
    try:
        result = await runtime.add(net, rt)
        assert result.interfaces[0].name == bridge
        assert addrs(ns, "eth0") == [result.ips[0].address]
        assert result.ips[0].gateway
        await runtime.check(net, rt)
    finally:
        await runtime.delete(net, rt)
    assert link(ns, "eth0") is None
    assert leases(lease_dir, net) == []


async def test_chain_with_tuning_and_capabilities(
    runtime: CNIRuntime, netns: NetnsFactory, veth_parent: str, lease_dir: Path
) -> None:
    tuning = {"type": "tuning", "mtu": 1280, "capabilities": {"mac": True}}
    net = macvlan_list(veth_parent, lease_dir, tuning)
    ns = netns("cni")
    rt = rt_for(ns, capability_args={"mac": "02:11:22:33:44:55", "ips": ["ignored"]})
    try:
        result = await runtime.add(net, rt)
        info = link(ns, "net1")
        assert info is not None
        assert info["mtu"] == 1280
        assert info["address"] == "02:11:22:33:44:55"
        assert result.interfaces[0].mac == "02:11:22:33:44:55"
        await runtime.check(net, rt)
    finally:
        await runtime.delete(net, rt)
    assert link(ns, "net1") is None


async def test_static_ipam(
    runtime: CNIRuntime, netns: NetnsFactory, veth_parent: str, lease_dir: Path
) -> None:
    ipam = {"type": "static", "addresses": [{"address": "198.19.7.9/24", "gateway": "198.19.7.1"}],
            "routes": [{"dst": "198.20.0.0/16", "gw": "198.19.7.1"}]}
    net = macvlan_list(veth_parent, lease_dir, ipam=ipam)
    ns = netns("cni")
    rt = rt_for(ns)
    try:
        result = await runtime.add(net, rt)
        assert addrs(ns, "net1") == ["198.19.7.9/24"]
        assert [r.dst for r in result.routes] == ["198.20.0.0/16"]
        await runtime.check(net, rt)
    finally:
        await runtime.delete(net, rt)
    assert link(ns, "net1") is None


async def test_del_from_cache_alone_after_restart(
    runtime: CNIRuntime, netns: NetnsFactory, veth_parent: str, lease_dir: Path,
    cni_bin_dirs: list[str],
) -> None:
    net = macvlan_list(veth_parent, lease_dir)
    ns = netns("cni")
    rt = rt_for(ns)
    await runtime.add(net, rt)
    fresh = CNIRuntime(cni_bin_dirs, cache_dir=runtime.cache_dir)
    try:
        assert [a.container_id for a in await fresh.cached_attachments(net.name)] == [
            rt.container_id]
        assert await fresh.delete_from_cache(rt.container_id, "net1", net.name)
    finally:
        await runtime.delete(net, rt)
    assert link(ns, "net1") is None
    assert leases(lease_dir, net) == []
    assert await fresh.get_cached(net.name, rt.container_id, "net1") is None
    assert not await fresh.delete_from_cache(rt.container_id, "net1", net.name)


async def test_del_with_netns_already_removed(
    runtime: CNIRuntime, netns: NetnsFactory, veth_parent: str, lease_dir: Path
) -> None:
    net = macvlan_list(veth_parent, lease_dir)
    ns = netns("cni")
    rt = rt_for(ns)
    await runtime.add(net, rt)
    subprocess.run(["ip", "netns", "del", ns], check=True)
    try:
        await runtime.delete(net, RuntimeConf(rt.container_id, "", rt.ifname, rt.args))
    finally:
        await runtime.delete(net, RuntimeConf(rt.container_id, "", rt.ifname))
    assert leases(lease_dir, net) == []
    assert await runtime.cached_attachments(net.name) == []


async def test_del_from_cache_with_netns_gone(
    runtime: CNIRuntime, netns: NetnsFactory, veth_parent: str, lease_dir: Path
) -> None:
    net = macvlan_list(veth_parent, lease_dir)
    ns = netns("cni")
    rt = rt_for(ns)
    await runtime.add(net, rt)
    subprocess.run(["ip", "netns", "del", ns], check=True)
    assert await runtime.delete_from_cache(rt.container_id, "net1", net.name)
    assert leases(lease_dir, net) == []


async def test_gc_removes_stale_attachment_and_its_lease(
    runtime: CNIRuntime, netns: NetnsFactory, veth_parent: str, lease_dir: Path
) -> None:
    net = macvlan_list(veth_parent, lease_dir)
    keep_ns, stale_ns = netns("cni"), netns("cni")
    keep, stale = rt_for(keep_ns), rt_for(stale_ns)
    try:
        kept_ip = (await runtime.add(net, keep)).ips[0].address.split("/")[0]
        await runtime.add(net, stale)
        assert len(leases(lease_dir, net)) == 2
        report = await runtime.gc(net, [(keep.container_id, "net1")])
        assert report.ok, report.errors
        assert report.deleted == ((stale.container_id, "net1"),)
        assert report.skipped_plugins == () and report.collected_plugins == ()  # 1.0.0 config
        assert leases(lease_dir, net) == [kept_ip]
        assert link(stale_ns, "net1") is None
        assert link(keep_ns, "net1") is not None
        assert [a.container_id for a in await runtime.cached_attachments(net.name)] == [
            keep.container_id]
    finally:
        await runtime.delete(net, keep)
        await runtime.delete(net, stale)


async def test_gc_disabled_does_nothing(
    runtime: CNIRuntime, netns: NetnsFactory, veth_parent: str, lease_dir: Path
) -> None:
    base = macvlan_list(veth_parent, lease_dir)
    net = parse_conflist(json.loads(base.bytes) | {"disableGC": True})
    rt = rt_for(netns("cni"))
    try:
        await runtime.add(net, rt)
        report = await runtime.gc(net, [])
        assert report.disabled and report.deleted == ()
        assert len(await runtime.cached_attachments(net.name)) == 1
    finally:
        await runtime.delete(net, rt)


async def test_missing_plugin(runtime: CNIRuntime, netns: NetnsFactory) -> None:
    net = parse_conflist({"cniVersion": "1.0.0", "name": "nope", "plugins": [
        {"type": "no-such-plugin"}]})
    with pytest.raises(CNIError) as exc:
        await runtime.add(net, rt_for(netns("cni")))
    assert exc.value.code == 999
    assert "no-such-plugin" in str(exc.value) and "/usr/lib/cni" in str(exc.value)


async def test_plugin_errors_keep_their_code(
    runtime: CNIRuntime, netns: NetnsFactory, lease_dir: Path, veth_parent: str
) -> None:
    net = macvlan_list(unique("nomaster", 6), lease_dir)
    ns = netns("cni")
    with pytest.raises(CNIError) as exc:
        await runtime.add(net, rt_for(ns))
    assert (exc.value.plugin, exc.value.verb, exc.value.msg) == ("macvlan", "ADD", "Link not found")
    assert exc.value.code == 999
    good = macvlan_list(veth_parent, lease_dir)
    with pytest.raises(CNIError) as exc:  # ADD without a netns: the skel's code 4
        await runtime.add(good, RuntimeConf(unique("ctr"), "", "net1"))
    assert exc.value.code == 4 and "CNI_NETNS" in exc.value.msg
    assert await runtime.cached_attachments(net.name) == []


async def test_exec_timeout_kills_a_blocked_dhcp_plugin(
    tmp_path: Path, netns: NetnsFactory, cni_bin_dirs: list[str]
) -> None:
    """The real dhcp plugin waits forever on a daemon socket that never answers."""
    sock_path = str(tmp_path / "dhcp.sock")
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(sock_path)
    silent.listen(4)
    runtime = CNIRuntime(cni_bin_dirs, cache_dir=str(tmp_path / "cache"), exec_timeout=0.5)
    net = parse_conflist({"cniVersion": "1.0.0", "name": unique("dhcp-"), "plugins": [
        {"type": "dhcp", "ipam": {"type": "dhcp", "daemonSocketPath": sock_path}}]})
    started = time.monotonic()
    try:
        with pytest.raises(CNIError) as exc:
            await runtime.add(net, rt_for(netns("cni"), "lo"))
    finally:
        silent.close()
    assert 0.5 <= time.monotonic() - started < 5
    assert type(exc.value).__name__ == "CNITimeoutError" and exc.value.retryable
    assert _children_running("dhcp") == []


async def test_cancelled_add_kills_the_plugin(
    tmp_path: Path, netns: NetnsFactory, cni_bin_dirs: list[str]
) -> None:
    sock_path = str(tmp_path / "dhcp.sock")
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(sock_path)
    silent.listen(4)
    runtime = CNIRuntime(cni_bin_dirs, cache_dir=str(tmp_path / "cache"), exec_timeout=30)
    net = parse_conflist({"cniVersion": "1.0.0", "name": unique("dhcp-"), "plugins": [
        {"type": "dhcp", "ipam": {"type": "dhcp", "daemonSocketPath": sock_path}}]})
    try:
        task = asyncio.create_task(runtime.add(net, rt_for(netns("cni"), "lo")))
        await asyncio.sleep(0.3)
        assert _children_running("dhcp") != []
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        silent.close()
    assert _children_running("dhcp") == []


def _children_running(name: str) -> list[int]:
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm == name and int(fields[1]) == me:
            found.append(int(entry.name))
    return found


Calls = list[tuple[str, str, str]]


@pytest.fixture
def stdins() -> list[dict[str, object]]:
    return []


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, stdins: list[dict[str, object]]) -> Calls:
    """Every plugin exec as (plugin, verb, cniVersion on stdin); stdin JSON in ``stdins``."""
    seen: Calls = []
    real = _exec.run_plugin

    async def spy(plugin: _exec.Plugin, verb: str, stdin: bytes, env: Mapping[str, str],
                  timeout: float) -> tuple[bytes, bytes]:
        stdins.append(json.loads(stdin))
        seen.append((plugin.name, verb, json.loads(stdin)["cniVersion"]))
        return await real(plugin, verb, stdin, env, timeout)

    monkeypatch.setattr(_exec, "run_plugin", spy)
    return seen


async def test_1_1_0_conflist_runs_at_1_0_0_and_results_come_back_as_1_1_0(
    runtime: CNIRuntime, netns: Callable[[str], str], veth_parent: str, lease_dir: Path,
    calls: Calls,
) -> None:
    net = macvlan_list(veth_parent, lease_dir, {"type": "tuning", "mtu": 1300}, version="1.1.0")
    first_ns, second_ns = netns("cni"), netns("cni")
    first, second = rt_for(first_ns), rt_for(second_ns)
    try:
        result = await runtime.add(net, first)
        assert result.cni_version == "1.1.0"
        assert addrs(first_ns, "net1") == [result.ips[0].address]
        # first contact: the 1.1.0 attempt is refused (code 1), VERSION asked once, rerun at 1.0.0
        assert calls == [
            ("macvlan", "ADD", "1.1.0"), ("macvlan", "VERSION", "1.1.0"),
            ("macvlan", "ADD", "1.0.0"),
            ("tuning", "ADD", "1.1.0"), ("tuning", "VERSION", "1.1.0"), ("tuning", "ADD", "1.0.0"),
        ]
        cached = await runtime.get_cached(net.name, first.container_id, "net1")
        assert cached is not None and cached.result is not None
        assert cached.result["cniVersion"] == "1.1.0"
        calls.clear()
        await runtime.add(net, second)  # steady state: no extra exec
        assert calls == [("macvlan", "ADD", "1.0.0"), ("tuning", "ADD", "1.0.0")]
        calls.clear()
        await runtime.check(net, first)
        assert calls == [("macvlan", "CHECK", "1.0.0"), ("tuning", "CHECK", "1.0.0")]
        calls.clear()
        status = await runtime.status(net)
        assert status.ready
        assert [(p.type, p.state) for p in status.plugins] == [
            ("macvlan", "unsupported"), ("tuning", "unsupported")]
        assert "not supported by plugin" in status.plugins[0].reason
        report = await runtime.gc(net, [(first.container_id, "net1")])
        assert report.ok, report.errors
        assert report.deleted == ((second.container_id, "net1"),)
        assert report.skipped_plugins == ("macvlan", "tuning")
        assert report.collected_plugins == ()
        assert ("macvlan", "GC", "1.1.0") not in calls
        assert ("macvlan", "DEL", "1.0.0") in calls
        assert link(second_ns, "net1") is None
        assert len(leases(lease_dir, net)) == 1
    finally:
        await runtime.delete(net, first)
        await runtime.delete(net, second)
    assert link(first_ns, "net1") is None
    assert leases(lease_dir, net) == []


async def test_a_fresh_runtime_negotiates_del_too(
    runtime: CNIRuntime, netns: Callable[[str], str], veth_parent: str, lease_dir: Path,
    cni_bin_dirs: list[str], calls: Calls,
) -> None:
    net = macvlan_list(veth_parent, lease_dir, version="1.1.0")
    rt = rt_for(netns("cni"))
    await runtime.add(net, rt)
    fresh = CNIRuntime(cni_bin_dirs, cache_dir=runtime.cache_dir)
    calls.clear()
    assert await fresh.delete_from_cache(rt.container_id, "net1", net.name)
    assert calls == [("macvlan", "DEL", "1.1.0"), ("macvlan", "VERSION", "1.1.0"),
                     ("macvlan", "DEL", "1.0.0")]
    assert leases(lease_dir, net) == []


async def test_check_refused_below_0_4_0_and_skipped_with_disable_check(
    runtime: CNIRuntime, netns: Callable[[str], str], veth_parent: str, lease_dir: Path,
    calls: Calls, stdins: list[dict[str, object]],
) -> None:
    old = macvlan_list(veth_parent, lease_dir, version="0.3.1")
    rt = rt_for(netns("cni"))
    try:
        result = await runtime.add(old, rt)
        assert result.cni_version == "0.3.1"
        with pytest.raises(CNIError, match="does not support the CHECK"):
            await runtime.check(old, rt)
        stdins.clear()
        await runtime.delete(old, rt)
        assert [(s["cniVersion"], "prevResult" in s) for s in stdins] == [("0.3.1", False)]
    finally:
        await runtime.delete(old, rt)
    skip = macvlan_list(veth_parent, lease_dir)
    skip = type(skip)(**{**skip.__dict__, "disable_check": True})
    calls.clear()
    await runtime.check(skip, rt)
    assert calls == []
    rt2 = rt_for(netns("cni"))
    current = macvlan_list(veth_parent, lease_dir, {"type": "tuning"}, version="0.4.0")
    added = await runtime.add(current, rt2)
    stdins.clear()
    await runtime.delete(current, rt2)
    assert [s["type"] for s in stdins] == ["tuning", "macvlan"]  # reverse order
    assert all(s["prevResult"] == added.to_dict("0.4.0") for s in stdins)



def test_cli_add_check_del_gc_status_version(
    tmp_path: Path, netns: Callable[[str], str], veth_parent: str, lease_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = unique("cli-")
    conf = tmp_path / "net.conflist"
    conf.write_text(json.dumps({"cniVersion": "1.1.0", "name": name, "plugins": [
        {"type": "macvlan", "master": veth_parent, "ipam": host_local(lease_dir)}]}))
    ns = netns("cni")
    common = ["--bin-dir", "/usr/lib/cni", "--cache-dir", str(tmp_path / "cache")]
    attach = ["--netns", ns, "--ifname", "net1", "--container-id", "c1",
              "--args", "IgnoreUnknown=1;K8S_POD_NAME=web"]
    try:
        assert main(["cni", "add", *attach, *common, str(conf)]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["cniVersion"] == "1.1.0"
        assert addrs(ns, "net1") == [result["ips"][0]["address"]]
        assert main(["cni", "check", *attach, *common, str(conf)]) == 0
        assert main(["cni", "status", *common, str(conf)]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["plugins"][0]["state"] == "unsupported"
        assert main(["cni", "version", *common, str(conf)]) == 0
        versions = json.loads(capsys.readouterr().out)
        assert "1.0.0" in versions["macvlan"]["supportedVersions"]
        assert main(["cni", "gc", "--valid", "c1:net1", *common, str(conf)]) == 0
        assert json.loads(capsys.readouterr().out)["deleted"] == []
    finally:
        assert main(["cni", "del", "--network", name, "--container-id", "c1", "--ifname", "net1",
                     *common]) == 0
    assert link(ns, "net1") is None
    assert leases(lease_dir, parse_conflist(conf.read_bytes())) == []
    assert main(["cni", "del", "--network", name, "--container-id", "c1", "--ifname", "net1",
                 *common]) == 0
    assert "nothing to delete" in capsys.readouterr().err


def test_cli_errors_carry_the_cni_code(
    tmp_path: Path, netns: Callable[[str], str], lease_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(json.dumps({"cniVersion": "1.0.0", "name": "bad", "type": "macvlan",
                                "master": unique("nomaster", 6), "ipam": host_local(lease_dir)}))
    common = ["--bin-dir", "/usr/lib/cni", "--cache-dir", str(tmp_path / "cache")]
    assert main(["cni", "add", "--netns", netns("cni"), *common, str(conf)]) == 1
    err = json.loads(capsys.readouterr().err)
    assert err["code"] == 999 and err["msg"] == "Link not found"
    conf.write_text(json.dumps({"cniVersion": "1.0.0", "name": "bad", "type": "../macvlan"}))
    assert main(["cni", "add", "--netns", "x", *common, str(conf)]) == 2
    assert "type" in capsys.readouterr().err
    missing = tmp_path / "missing.conf"
    missing.write_text(json.dumps({"cniVersion": "1.0.0", "name": "m", "type": "absent"}))
    assert main(["cni", "version", *common, str(missing)]) == 1
    assert "absent" in json.loads(capsys.readouterr().err)["msg"]


async def test_del_from_cache_reads_the_entry_once_and_releases_the_lease(
    runtime: CNIRuntime, netns: NetnsFactory, veth_parent: str, lease_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = macvlan_list(veth_parent, lease_dir)
    ns = netns("cni")
    rt = rt_for(ns)
    await runtime.add(net, rt)
    assert len(leases(lease_dir, net)) == 1
    reads: list[Path] = []
    read_sync = _cache.read_sync

    def counting(path: Path) -> _cache.CachedAttachment | None:
        reads.append(path)
        return read_sync(path)

    monkeypatch.setattr(_cache, "read_sync", counting)
    assert await runtime.delete_from_cache(rt.container_id, "net1", net.name)  # netns exists
    assert len(reads) == 1  # the entry (and its prevResult) is read once, not once per step
    assert leases(lease_dir, net) == []
    assert await runtime.cached_attachments(net.name) == []
    assert not await runtime.delete_from_cache(rt.container_id, "net1", net.name)
