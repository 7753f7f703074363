"""The real kubelet 1.36.2's bytes (shared/protocol/vectors/kubelet-1.36.2): decoded by our
generated code, and answered by our real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from claims.claimkit import DRIVER, make_claim
from google.protobuf import json_format
from google.protobuf import message as pb_message
from kubelet.kubeletkit import MemoryReader, running_plugin

from cnidra.kubelet import socket_paths
from cnidra.kubelet._convert import (
    prepare_response_v1,
    prepare_response_v1beta1,
    unprepare_response_v1,
    unprepare_response_v1beta1,
)
from cnidra.kubelet._proto import (
    dra_v1_pb2,
    dra_v1beta1_pb2,
    health_v1alpha1_pb2,
    pluginregistration_pb2,
)
from cnidra.kubelet._services import Registration
from cnidra.model.claims import PreparedDevice, PrepareOutcome
from support import SHARED

VECTORS = SHARED / "protocol" / "vectors" / "kubelet-1.36.2"
INDEX: dict[str, Any] = json.loads((VECTORS / "index.json").read_text())

Msg = type[pb_message.Message]
TYPES: dict[str, tuple[Msg, Msg]] = {
    "/pluginregistration.Registration/GetInfo": (
        pluginregistration_pb2.InfoRequest, pluginregistration_pb2.PluginInfo),
    "/pluginregistration.Registration/NotifyRegistrationStatus": (
        pluginregistration_pb2.RegistrationStatus,
        pluginregistration_pb2.RegistrationStatusResponse),
    "/v1alpha1.DRAResourceHealth/NodeWatchResources": (
        health_v1alpha1_pb2.NodeWatchResourcesRequest,
        health_v1alpha1_pb2.NodeWatchResourcesResponse),
    "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources": (
        dra_v1_pb2.NodePrepareResourcesRequest, dra_v1_pb2.NodePrepareResourcesResponse),
    "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodeUnprepareResources": (
        dra_v1_pb2.NodeUnprepareResourcesRequest, dra_v1_pb2.NodeUnprepareResourcesResponse),
    "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodePrepareResources": (
        dra_v1beta1_pb2.NodePrepareResourcesRequest,
        dra_v1beta1_pb2.NodePrepareResourcesResponse),
    "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodeUnprepareResources": (
        dra_v1beta1_pb2.NodeUnprepareResourcesRequest,
        dra_v1beta1_pb2.NodeUnprepareResourcesResponse),
}


def as_dict(msg: pb_message.Message) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


def vector(name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [v for v in INDEX["vectors"] if v["name"] == name]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("vec", INDEX["vectors"], ids=lambda v: v["name"])
def test_decode_every_vector(vec: dict[str, Any]) -> None:
    req_cls, resp_cls = TYPES[vec["method"]]
    raw = (VECTORS / vec["request"]["file"]).read_bytes()
    assert raw.hex() == vec["request"]["hex"]
    assert bytes.fromhex(vec["request"]["grpc_frame_hex"]) == (
        b"\0" + len(raw).to_bytes(4, "big") + raw)
    request = req_cls.FromString(raw)
    assert as_dict(request) == (vec["request"]["decoded"] or {})
    assert request.SerializeToString() == raw
    response = vec.get("response")
    if response and response.get("file"):
        body = (VECTORS / response["file"]).read_bytes()
        parsed = resp_cls.FromString(body)
        assert as_dict(parsed) == response["decoded"]
        # Same size again (map order may differ): nothing was kept as an unknown field.
        assert len(parsed.SerializeToString()) == len(body)


def test_default_paths_and_get_info_match_the_real_exchange() -> None:
    paths = socket_paths(DRIVER)
    assert (paths.registration, paths.dra) == (INDEX["sockets"]["reg"], INDEX["sockets"]["dra"])
    ours = Registration(driver=DRIVER, endpoint=paths.dra,
                        versions=["v1.DRAPlugin", "v1beta1.DRAPlugin"])._info
    assert ours.SerializeToString() == (VECTORS / "01-getinfo.response.bin").read_bytes()


async def _raw_call(path: str, method: str, body: bytes) -> bytes:
    async with grpc.aio.insecure_channel(f"unix://{path}") as channel:
        call = channel.unary_unary(method, None, None)  # bytes in, bytes out
        out: bytes = await call(body, timeout=5)
        return out


def _claims_of(*names: str) -> list[dict[str, Any]]:
    out = []
    for name in names:
        for c in vector(name)["request"]["decoded"]["claims"]:
            out.append(make_claim(uid=c["uid"], name=c["name"], namespace=c["namespace"]))
    return out


async def test_answer_the_real_requests(tmp_path: Path) -> None:
    reader = MemoryReader(*_claims_of("04-prepare-v1-one-claim", "10-prepare-v1beta1-one-claim",
                                      "14-prepare-v1-two-claims"))
    async with running_plugin(tmp_path, reader) as (plugin, state, _):
        for name in ("02-notify-registered", "13-notify-rejected"):
            vec = vector(name)
            body = (VECTORS / vec["request"]["file"]).read_bytes()
            assert await _raw_call(plugin.paths.registration, vec["method"], body) == b""
            assert plugin.registered == (name == "02-notify-registered")
        assert plugin.registration_error.startswith("RegisterPlugin error -- plugin validation")
        for name in ("04-prepare-v1-one-claim", "10-prepare-v1beta1-one-claim",
                     "14-prepare-v1-two-claims", "07-unprepare-v1-one-claim",
                     "11-unprepare-v1beta1-one-claim", "15-unprepare-v1-two-claims"):
            vec = vector(name)
            _, resp_cls = TYPES[vec["method"]]
            body = (VECTORS / vec["request"]["file"]).read_bytes()
            answer = resp_cls.FromString(await _raw_call(plugin.paths.dra, vec["method"], body))
            uids = [c["uid"] for c in vec["request"]["decoded"]["claims"]]
            got = as_dict(answer)["claims"]
            assert sorted(got) == sorted(uids)
            assert all("error" not in got[u] for u in uids), got
            if "prepare" in name and "unprepare" not in name:
                assert all(state.get(u) is not None for u in uids)
                for u in uids:
                    (dev,) = got[u]["devices"]
                    assert (dev["request_names"], dev["device_name"]) == (["net"], "eth1")
                    assert "share_id" not in dev  # make_claim allocates no share
            else:
                assert all(state.get(u) is None for u in uids)
                assert got == {u: {} for u in uids}  # the same shape the kubelet accepted
        # 03: the kubelet opens the health stream even when it is not advertised; without a
        # health source we answer UNIMPLEMENTED, as the probe did.
        async with grpc.aio.insecure_channel(f"unix://{plugin.paths.dra}") as channel:
            stream = channel.unary_stream(
                "/v1alpha1.DRAResourceHealth/NodeWatchResources", None, None)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in stream(b"", timeout=5):
                    pass
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("name", [
    "04-prepare-v1-one-claim", "05-prepare-v1-claim-error", "10-prepare-v1beta1-one-claim",
])
def test_our_prepare_encoding_is_byte_identical_to_the_accepted_reply(name: str) -> None:
    vec = vector(name)
    outcomes = {
        uid: PrepareOutcome(
            tuple(PreparedDevice(tuple(d["request_names"]), d["pool_name"], d["device_name"],
                                 share_id=d.get("share_id")) for d in answer.get("devices", [])),
            answer.get("error", ""),
        )
        for uid, answer in vec["response"]["decoded"]["claims"].items()
    }
    build = prepare_response_v1 if "v1-" in name else prepare_response_v1beta1
    assert build(outcomes).SerializeToString() == (
        VECTORS / vec["response"]["file"]).read_bytes()


@pytest.mark.parametrize("name", ["07-unprepare-v1-one-claim", "11-unprepare-v1beta1-one-claim"])
def test_our_unprepare_encoding_is_byte_identical_to_the_accepted_reply(name: str) -> None:
    vec = vector(name)
    errors = {uid: "" for uid in vec["response"]["decoded"]["claims"]}
    build = unprepare_response_v1 if "v1-" in name else unprepare_response_v1beta1
    assert build(errors).SerializeToString() == (VECTORS / vec["response"]["file"]).read_bytes()
