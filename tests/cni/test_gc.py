"""GC and STATUS flow and plugin input (fake plugin runner; the real plugins lack 1.1.0)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnidra.cni import NetworkConfigList, RuntimeConf, _cache, _gc, parse_conflist
from cnidra.cni._config import PluginConf
from cnidra.cni._input import plugin_stdin
from cnidra.cni._plugins import PluginRunner
from cnidra.errors import CNIError

NET = parse_conflist({"cniVersion": "1.1.0", "name": "gcnet", "plugins": [
    {"type": "new", "capabilities": {"mac": True}}, {"type": "old"}, {"type": "broken"}]})


class FakeRunner(PluginRunner):
    """Answers GC/STATUS like plugins that speak 1.1.0 ("new"), 1.0.0 ("old"), or fail."""

    def __init__(self) -> None:
        super().__init__(["/nonexistent"], 1.0)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def network_verb(
        self, net: NetworkConfigList, conf: PluginConf, verb: str,
        extra: Mapping[str, Any] | None = None,
    ) -> bool:
        self.calls.append((conf.type, verb, json.loads(
            plugin_stdin(net, conf, net.cni_version, verb, extra=extra))))
        if conf.type == "broken":
            raise CNIError(50, "plugin not available", plugin=conf.type, verb=verb)
        return conf.type == "new"


async def _seed(cache_dir: str, *attachments: tuple[str, str, str]) -> None:
    for net_name, cid, ifname in attachments:
        await _cache.write(cache_dir, _cache.entry_for(
            net_name, config=NET.bytes, container_id=cid, ifname=ifname, netns=f"/ns/{cid}",
            args=[("K", "V")], capability_args={"mac": "02:00:00:00:00:01"}, result=None))


async def test_gc_deletes_stale_then_collects_with_both_attachment_keys(tmp_path: Path) -> None:
    cache_dir = str(tmp_path)
    await _seed(cache_dir, ("gcnet", "keep", "eth1"), ("gcnet", "stale", "eth1"),
                ("gcnet", "keep", "eth2"), ("othernet", "stale", "eth1"))
    deleted: list[RuntimeConf] = []

    async def delete(net: NetworkConfigList, rt: RuntimeConf) -> None:
        deleted.append(rt)

    runner = FakeRunner()
    report = await _gc.collect(runner, cache_dir, delete, NET, [("keep", "eth1"), ("keep", "eth2")])
    assert report.deleted == (("stale", "eth1"),)
    assert deleted == [RuntimeConf("stale", "/ns/stale", "eth1", (("K", "V"),),
                                   {"mac": "02:00:00:00:00:01"})]
    assert report.collected_plugins == ("new",)
    assert report.skipped_plugins == ("old",)
    assert [e.code for e in report.errors] == [50] and not report.ok
    gc_input = runner.calls[0][2]
    expected = [{"containerID": "keep", "ifname": "eth1"},
                {"containerID": "keep", "ifname": "eth2"}]
    assert gc_input["cni.dev/valid-attachments"] == expected
    assert gc_input["cni.dev/attachments"] == expected
    assert gc_input["name"] == "gcnet" and gc_input["cniVersion"] == "1.1.0"
    assert "runtimeConfig" not in gc_input and "prevResult" not in gc_input


async def test_gc_before_1_1_0_only_deletes(tmp_path: Path) -> None:
    old = parse_conflist(json.loads(NET.bytes) | {"cniVersion": "1.0.0"})
    await _seed(str(tmp_path), ("gcnet", "stale", "eth1"))
    runner = FakeRunner()

    async def delete(net: NetworkConfigList, rt: RuntimeConf) -> None:
        raise CNIError(3, "unknown container", plugin="new", verb="DEL")

    report = await _gc.collect(runner, str(tmp_path), delete, old, [])
    assert report.deleted == () and [e.code for e in report.errors] == [3]
    assert runner.calls == []


async def test_status_ready_unsupported_and_not_ready() -> None:
    status = await _gc.status(FakeRunner(), NET)
    assert [(p.type, p.state) for p in status.plugins] == [
        ("new", "ready"), ("old", "unsupported"), ("broken", "not-ready")]
    assert not status.ready
    assert status.plugins[2].error is not None and status.plugins[2].error.code == 50
    old = parse_conflist(json.loads(NET.bytes) | {"cniVersion": "0.4.0"})
    runner = FakeRunner()
    status = await _gc.status(runner, old)
    assert status.ready and runner.calls == []
    assert {p.state for p in status.plugins} == {"unsupported"}


def test_runtime_config_is_declared_capabilities_intersected() -> None:
    rt = RuntimeConf("c", "/ns", "eth1", capability_args={"mac": "02:aa", "ips": ["10.0.0.1/24"]})
    body = json.loads(plugin_stdin(NET, NET.plugins[0], "1.1.0", "ADD", rt=rt))
    assert body["runtimeConfig"] == {"mac": "02:aa"}
    assert "runtimeConfig" not in json.loads(plugin_stdin(NET, NET.plugins[1], "1.1.0", "ADD",
                                                          rt=rt))
