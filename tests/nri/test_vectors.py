"""Every captured containerd 2.4 / NRI v0.12.2 message decodes with our .proto, and the real
plugin answers the runtime's own bytes, replayed over a real unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message as ProtoMessage
from nri.nrikit import Recorder, index, vector

from cnidra.attach import Sandbox
from cnidra.nri import NRIPlugin, api, netns_path, sandbox_from_pod
from cnidra.ttrpc._proto import ttrpc_pb2

REQUESTS: dict[str, type[ProtoMessage]] = {
    "Configure": api.ConfigureRequest, "Synchronize": api.SynchronizeRequest,
    "RunPodSandbox": api.RunPodSandboxRequest, "StopPodSandbox": api.StopPodSandboxRequest,
    "RemovePodSandbox": api.RemovePodSandboxRequest, "StateChange": api.StateChangeEvent,
    "RegisterPlugin": api.RegisterPluginRequest,
}
FILES = index()["files"]


def check_pod(pod: api.PodSandbox, want: dict[str, Any]) -> None:
    assert (pod.id, pod.name, pod.namespace, pod.uid) == (
        want["id"], want["name"], want["namespace"], want["uid"])
    assert list(pod.ips) == want["ips"]
    assert pod.pid == want["pid"]
    assert pod.runtime_handler == want["runtime_handler"]
    assert pod.linux.cgroup_parent == want["linux_cgroup_parent"]
    assert pod.linux.cgroups_path == want["linux_cgroups_path"]
    assert [{"type": n.type, "path": n.path} for n in pod.linux.namespaces] == \
        want["linux_namespaces"]
    assert dict(pod.labels) == dict(want["labels_wire_order"])
    assert dict(pod.annotations) == dict(want["annotations_wire_order"])
    assert netns_path(pod) == want["netns_path"]
    sandbox = sandbox_from_pod(pod)
    assert sandbox == Sandbox(want["id"], want["uid"], want["name"], want["namespace"],
                              want["netns_path"])


@pytest.mark.parametrize("entry", [e for e in FILES if e["kind"] == "request"],
                         ids=lambda e: e["file"][:2])
def test_captured_requests_decode(entry: dict[str, Any]) -> None:
    raw = vector(entry["file"])
    req = ttrpc_pb2.Request.FromString(raw[10:])
    assert (req.service.rsplit(".", 1)[1] in {"Plugin", "Runtime"}, req.method) == (
        True, entry["method"])
    assert req.timeout_nano == (entry.get("timeout_nano") or 0)
    assert [(kv.key, kv.value) for kv in req.metadata] == [
        tuple(kv) for kv in entry.get("metadata") or []]
    msg: Any = REQUESTS[req.method].FromString(req.payload)
    want = entry["decoded"]
    if req.method == "Configure":
        assert (msg.config, msg.runtime_name, msg.runtime_version, msg.registration_timeout,
                msg.request_timeout, msg.NRI_version) == (
            want["config"], want["runtime_name"], want["runtime_version"],
            want["registration_timeout_ms"], want["request_timeout_ms"], want["NRI_version"])
    elif req.method == "Synchronize":
        assert msg.more == want["more"]
        assert len(msg.pods) == len(want["pods"]) == 1
        check_pod(msg.pods[0], want["pods"][0])
    elif req.method == "RegisterPlugin":
        assert (msg.plugin_name, msg.plugin_idx, msg.NRI_version) == (
            want["plugin_name"], want["plugin_idx"], want["NRI_version"])
    else:
        if req.method == "StateChange":
            assert msg.event == want["event"]
            assert api.Event.Name(msg.event) == want["event_name"]
        check_pod(msg.pod, want["pod"])


@pytest.mark.parametrize("entry", [e for e in FILES if e["kind"] == "response"],
                         ids=lambda e: e["file"][:2])
def test_captured_responses_decode(entry: dict[str, Any]) -> None:
    resp = ttrpc_pb2.Response.FromString(vector(entry["file"])[10:])
    want = entry.get("status") or {"code": 0, "message": ""}
    assert (resp.status.code, resp.status.message) == (want["code"], want["message"])
    if entry["method"] == "Configure":
        assert api.ConfigureResponse.FromString(resp.payload).events == \
            entry["decoded"]["events_mask"]
    elif entry["method"] == "Synchronize":
        assert api.SynchronizeResponse.FromString(resp.payload).more is False


# --- replay: the runtime's captured bytes against the real plugin --------------------------

def frames_of(files: list[str], max_frame: int = 4096) -> bytes:
    """The runtime->plugin mux stream for these files, split as containerd does."""
    conn = {e["file"]: e["connID"] for e in FILES}
    out = bytearray()
    for name in files:
        raw = vector(name)
        for start in range(0, len(raw), max_frame):
            chunk = raw[start:start + max_frame]
            out += struct.pack(">II", conn[name], len(chunk)) + chunk
    return bytes(out)


class PluginSide:
    """Reads what the plugin writes: mux frames -> ttrpc messages per conn."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buffers: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}

    async def message(self, conn: int) -> tuple[int, int, bytes]:
        buf = self.buffers[conn]
        while True:
            if len(buf) >= 10:
                length, sid, mtype, _ = struct.unpack(">IIBB", buf[:10])
                if len(buf) >= 10 + length:
                    payload = bytes(buf[10:10 + length])
                    del buf[:10 + length]
                    return sid, mtype, payload
            cid, length = struct.unpack(">II", await self.reader.readexactly(8))
            self.buffers[cid] += await self.reader.readexactly(length)


@contextlib.asynccontextmanager
async def replay_runtime(tmp_path: Path, stream: bytes,
                         handler: Recorder) -> AsyncIterator[tuple[PluginSide, Any]]:
    """A fake runtime that writes ``stream`` verbatim once the plugin has registered."""
    path = str(tmp_path / "nri.sock")
    sides: asyncio.Queue[tuple[PluginSide, asyncio.StreamWriter]] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await sides.put((PluginSide(reader), writer))

    server = await asyncio.start_unix_server(accept, path=path)
    plugin = NRIPlugin(handler, socket_path=path, reconnect_min=0.05, reconnect_max=0.1)
    task = asyncio.create_task(plugin.run())
    writer = None
    try:
        async with asyncio.timeout(5):
            side, writer = await sides.get()
            sid, mtype, payload = await side.message(2)
        register = api.RegisterPluginRequest.FromString(
            ttrpc_pb2.Request.FromString(payload).payload)
        assert (sid, mtype) == (1, 1)
        writer.write(stream)
        await writer.drain()
        yield side, register
    finally:
        if writer is not None:
            writer.close()
        await plugin.stop()
        async with asyncio.timeout(5):
            await task
        server.close()
        await server.wait_closed()


async def collect(side: PluginSide, count: int) -> dict[int, ttrpc_pb2.Response]:
    replies: dict[int, ttrpc_pb2.Response] = {}
    async with asyncio.timeout(5):
        while len(replies) < count:
            sid, mtype, payload = await side.message(1)
            assert mtype == 2
            replies[sid] = ttrpc_pb2.Response.FromString(payload)
    return replies


async def test_replayed_run1_is_answered(tmp_path: Path) -> None:
    rec = Recorder()
    files = [e["file"] for e in FILES if e["run"] == "run1" and e["kind"] == "request" and
             e["direction"] == "runtime->plugin"]
    stream = frames_of(["02-runtime-to-plugin-RegisterPlugin.response.bin", *files])
    async with replay_runtime(tmp_path, stream, rec) as (side, register):
        assert (register.plugin_name, register.plugin_idx, register.NRI_version) == (
            "cnidra", "50", "v0.12.2")
        replies = await collect(side, 5)
    assert sorted(replies) == [1, 3, 5, 7, 9]
    assert all(r.status.code == 0 for r in replies.values())
    assert api.ConfigureResponse.FromString(replies[1].payload).events == 7
    assert api.SynchronizeResponse.FromString(replies[3].payload).more is False
    pod = next(e for e in FILES if e["file"].startswith("07"))["decoded"]["pod"]
    pre = next(e for e in FILES if e["file"].startswith("05"))["decoded"]["pods"][0]
    assert rec.of("sync") == [frozenset({pre["id"]})]
    run, = rec.of("run")
    assert (run.id, run.pod_uid, run.pod_name, run.pod_namespace, run.netns) == (
        pod["id"], pod["uid"], pod["name"], pod["namespace"], pod["netns_path"])
    stop, = rec.of("stop")
    assert stop.netns == pod["netns_path"]
    remove, = rec.of("remove")
    assert remove.id == pod["id"] and remove.netns is None


async def test_replayed_run2_statechange_is_answered(tmp_path: Path) -> None:
    rec = Recorder()
    files = ["02-runtime-to-plugin-RegisterPlugin.response.bin",
             "03-runtime-to-plugin-Configure.request.bin",
             "05-runtime-to-plugin-Synchronize.request.bin"] + [
        e["file"] for e in FILES if e["run"] == "run2" and e["kind"] == "request"]
    async with replay_runtime(tmp_path, frames_of(files), rec) as (side, _):
        replies = await collect(side, 6)
    assert sorted(replies) == [1, 3, 5, 7, 9, 11]
    assert all(r.status.code == 0 for r in replies.values())
    # all requests were sent at once, so the hooks ran concurrently: compare as a multiset
    assert sorted(kind for kind, _ in rec.calls) == ["remove", "run", "run", "stop", "sync"]
    assert rec.of("run")[0] == rec.of("run")[1]  # dedicated then StateChange: same sandbox
    assert rec.of("remove")[0].netns is None


async def test_replayed_mux_capture_with_split_synchronize(tmp_path: Path) -> None:
    rec = Recorder()
    frames = index()["mux_stream"]["frames"]
    async with replay_runtime(tmp_path, vector("mux-stream.bin"), rec) as (side, _):
        replies = await collect(side, 20)
    assert sorted(replies) == list(range(1, 40, 2))
    assert all(r.status.code == 0 for r in replies.values())
    runs = [f for f in frames if f["method"] == "RunPodSandbox"]
    assert [(s.id, s.netns) for s in rec.of("run")] == [
        (f["pod_id"], f["netns_path"]) for f in runs]
    assert [s.netns for s in rec.of("stop")] == [f["netns_path"] for f in runs]
    assert [s.netns for s in rec.of("remove")] == [None] * 6
    assert len(rec.of("sync")) == 1
