"""The libcni result cache: format, paths, modes, tolerance (no plugins needed)."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

from cnidra.cni import CachedAttachment, CNIRuntime, _cache

CONF = b'{"cniVersion":"1.0.0","name":"net-a","plugins":[{"type":"macvlan"}]}'

# What libcni (Go json.Marshal of cachedInfo) writes, byte for byte in its field order.
LIBCNI_FILE = (
    '{"kind":"cniCacheV1","containerId":"ctr1","config":"' + base64.b64encode(CONF).decode()
    + '","ifName":"net1","networkName":"net-a","netns":"/var/run/netns/cni-1234",'
    '"cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAME","web"]],'
    '"capabilityArgs":{"mac":"02:00:00:00:00:09"},'
    '"result":{"cniVersion":"1.0.0","dns":{},"interfaces":[{"name":"net1","mac":"02:00:00:00:00:09",'
    '"sandbox":"/var/run/netns/cni-1234"}],"ips":[{"address":"10.5.0.2/24","interface":0}]}}'
)


def test_round_trip_and_libcni_field_names() -> None:
    entry = _cache.entry_for(
        "net-a", config=CONF, container_id="ctr1", ifname="net1", netns="/n",
        args=[("K8S_POD_NAME", "web")], capability_args={"mac": "x"},
        result={"cniVersion": "1.0.0"},
    )
    data = _cache.encode(entry)
    obj = json.loads(data)
    assert list(obj) == ["kind", "containerId", "config", "ifName", "networkName", "netns",
                         "cniArgs", "capabilityArgs", "result"]
    assert base64.b64decode(obj["config"]) == CONF
    assert obj["cniArgs"] == [["K8S_POD_NAME", "web"]]
    assert _cache.decode(data) == entry


def test_empty_fields_are_omitted_as_go_omitempty() -> None:
    entry = _cache.entry_for("n", config=CONF, container_id="c", ifname="i", netns="", args=(),
                             capability_args={}, result=None)
    assert set(json.loads(_cache.encode(entry))) == {
        "kind", "containerId", "config", "ifName", "networkName"}


async def test_reads_a_libcni_written_file(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "net-a-ctr1-net1").write_text(LIBCNI_FILE)
    runtime = CNIRuntime(["/nonexistent"], cache_dir=str(tmp_path))
    entry = await runtime.get_cached("net-a", "ctr1", "net1")
    assert isinstance(entry, CachedAttachment)
    assert entry.config == CONF
    assert entry.cni_args == (("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web"))
    assert entry.capability_args == {"mac": "02:00:00:00:00:09"}
    assert entry.result is not None and entry.result["ips"][0]["address"] == "10.5.0.2/24"
    assert [e.container_id for e in await runtime.cached_attachments("net-a")] == ["ctr1"]


async def test_unreadable_or_foreign_files_are_no_entry(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "net-a-bad1-eth0").write_text("{garbage")
    (results / "net-a-bad2-eth0").write_text(json.dumps({"kind": "other"}))
    (results / "net-a-bad3-eth0").write_text(LIBCNI_FILE.replace('"config":"', '"config":"%%'))
    (results / "net-a-b-ok-eth0").write_text(LIBCNI_FILE.replace("net-a", "net-a-b"))
    runtime = CNIRuntime(["/nonexistent"], cache_dir=str(tmp_path))
    assert await runtime.get_cached("net-a", "bad1", "eth0") is None
    assert await runtime.get_cached("net-a", "bad2", "eth0") is None
    assert await runtime.get_cached("net-a", "bad3", "eth0") is None
    assert await runtime.cached_attachments("net-a") == []
    assert [e.network_name for e in await runtime.cached_attachments()] == ["net-a-b"]


async def test_write_is_atomic_with_libcni_modes(tmp_path: Path) -> None:
    entry = _cache.entry_for("net-a", config=CONF, container_id="ctr1", ifname="net1",
                             netns="/n", args=(), capability_args={},
                             result={"cniVersion": "1.0.0"})
    path = await _cache.write(str(tmp_path / "cache"), entry)
    assert path == tmp_path / "cache" / "results" / "net-a-ctr1-net1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["net-a-ctr1-net1"]
    await _cache.remove(str(tmp_path / "cache"), "net-a", "ctr1", "net1")
    await _cache.remove(str(tmp_path / "cache"), "net-a", "ctr1", "net1")
    assert not path.exists()
