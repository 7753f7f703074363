"""The generated code: reproducible from the .proto files, and field numbers checked against
wire bytes built by hand (independently of the generated code)."""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import message as pb_message
from google.protobuf.message_factory import GetMessageClass

from cnidra.kubelet._proto import (
    dra_v1_pb2,
    dra_v1beta1_pb2,
    generate,
    health_v1alpha1_pb2,
    pluginregistration_pb2,
)

VARINT, LEN = 0, 2


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def ln(field: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return tag(field, LEN) + varint(len(data)) + data


def vi(field: int, value: int) -> bytes:
    return tag(field, VARINT) + varint(value)


def test_generated_code_is_reproducible(tmp_path: Path) -> None:
    written = generate.generate(tmp_path)
    committed = generate.HERE
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in committed.iterdir() if "_pb2" in p.name
                           and p.suffix in (".py", ".pyi"))
    assert len(names) == 16
    for path in written:
        assert filecmp.cmp(path, committed / path.name, shallow=False), (
            f"{path.name} differs from a fresh generation: run `make protos`")


def test_registration_wire_bytes() -> None:
    info = pluginregistration_pb2.PluginInfo(
        type="DRAPlugin", name="d.example.com", endpoint="/p/dra.sock",
        supported_versions=["v1.DRAPlugin", "v1beta1.DRAPlugin"],
    )
    wire = (ln(1, "DRAPlugin") + ln(2, "d.example.com") + ln(3, "/p/dra.sock")
            + ln(4, "v1.DRAPlugin") + ln(4, "v1beta1.DRAPlugin"))
    assert info.SerializeToString() == wire
    assert pluginregistration_pb2.PluginInfo.FromString(wire) == info
    status = pluginregistration_pb2.RegistrationStatus.FromString(vi(1, 1) + ln(2, "why"))
    assert (status.plugin_registered, status.error) == (True, "why")
    assert pluginregistration_pb2.InfoRequest().SerializeToString() == b""


def _claim(ns: str, uid: str, name: str) -> bytes:
    return ln(1, ns) + ln(2, uid) + ln(3, name)


def test_dra_v1_wire_bytes() -> None:
    request = ln(1, _claim("ns", "u1", "c1")) + ln(1, _claim("ns", "u2", "c2"))
    parsed = dra_v1_pb2.NodePrepareResourcesRequest.FromString(request)
    assert [(c.namespace, c.uid, c.name) for c in parsed.claims] == [
        ("ns", "u1", "c1"), ("ns", "u2", "c2")]
    assert parsed.SerializeToString() == request
    device = ln(1, "net") + ln(2, "pool") + ln(3, "eth1") + ln(4, "cdi/x=y") + ln(5, "share")
    entry = ln(1, "u1") + ln(2, ln(1, device))  # map entry: key = 1, value = 2
    response = dra_v1_pb2.NodePrepareResourcesResponse.FromString(ln(1, entry))
    dev = response.claims["u1"].devices[0]
    assert (list(dev.request_names), dev.pool_name, dev.device_name, list(dev.cdi_device_ids),
            dev.share_id) == (["net"], "pool", "eth1", ["cdi/x=y"], "share")
    assert response.SerializeToString() == ln(1, entry)
    failed = ln(1, ln(1, "u2") + ln(2, ln(2, "boom")))
    assert dra_v1_pb2.NodePrepareResourcesResponse.FromString(failed).claims["u2"].error == "boom"
    unprep = ln(1, ln(1, "u1") + ln(2, ln(1, "later")))
    assert dra_v1_pb2.NodeUnprepareResourcesResponse.FromString(
        unprep).claims["u1"].error == "later"


def test_dra_v1beta1_wire_bytes_have_no_field_5() -> None:
    device = ln(1, "net") + ln(2, "pool") + ln(3, "eth1")
    built = dra_v1beta1_pb2.Device(request_names=["net"], pool_name="pool", device_name="eth1")
    assert built.SerializeToString() == device
    with_5 = dra_v1beta1_pb2.Device.FromString(device + ln(5, "share"))
    assert with_5.device_name == "eth1"
    assert "share_id" not in dra_v1beta1_pb2.Device.DESCRIPTOR.fields_by_name
    assert dra_v1beta1_pb2.NodePrepareResourcesRequest.FromString(
        ln(1, _claim("a", "b", "c"))).claims[0].uid == "b"
    assert dra_v1beta1_pb2.DESCRIPTOR.package == "k8s.io.kubelet.pkg.apis.dra.v1beta1"
    assert dra_v1_pb2.DESCRIPTOR.package == "k8s.io.kubelet.pkg.apis.dra.v1"


def test_health_wire_bytes() -> None:
    dev = (ln(1, ln(1, "node1") + ln(2, "eth1")) + vi(2, 2) + vi(3, 1_790_000_000) + vi(4, 30)
           + ln(5, "no carrier"))
    wire = ln(1, dev)
    msg = health_v1alpha1_pb2.NodeWatchResourcesResponse(devices=[
        health_v1alpha1_pb2.DeviceHealth(
            device=health_v1alpha1_pb2.DeviceIdentifier(pool_name="node1", device_name="eth1"),
            health=health_v1alpha1_pb2.UNHEALTHY, last_updated_time=1_790_000_000,
            health_check_timeout_seconds=30, message="no carrier",
        )])
    assert msg.SerializeToString() == wire
    assert health_v1alpha1_pb2.NodeWatchResourcesResponse.FromString(wire) == msg
    assert (health_v1alpha1_pb2.UNKNOWN, health_v1alpha1_pb2.HEALTHY) == (0, 1)
    assert health_v1alpha1_pb2.DESCRIPTOR.package == "v1alpha1"


def test_service_paths() -> None:
    paths = {
        f"/{s.full_name}/{m.name}"
        for mod in (dra_v1_pb2, dra_v1beta1_pb2, health_v1alpha1_pb2, pluginregistration_pb2)
        for s in mod.DESCRIPTOR.services_by_name.values() for m in s.methods
    }
    assert paths == {
        "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources",
        "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodeUnprepareResources",
        "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodePrepareResources",
        "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodeUnprepareResources",
        "/v1alpha1.DRAResourceHealth/NodeWatchResources",
        "/pluginregistration.Registration/GetInfo",
        "/pluginregistration.Registration/NotifyRegistrationStatus",
    }
    stream = health_v1alpha1_pb2.DESCRIPTOR.services_by_name["DRAResourceHealth"].methods[0]
    assert stream.server_streaming and not stream.client_streaming


def _cls(descriptor: Any) -> type[pb_message.Message]:
    return GetMessageClass(descriptor)


def _filled(cls: type[pb_message.Message], depth: int = 0) -> pb_message.Message:
    """An instance with every field set to a non-default value (maps and repeats: two)."""
    msg = cls()
    for field in cls.DESCRIPTOR.fields:
        value: object
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            target = getattr(msg, field.name)
            for key in ("k1", "k2"):
                if value_field.message_type is not None:
                    target[key].CopyFrom(_filled(_cls(value_field.message_type)))
                else:
                    target[key] = "v"
            continue
        if field.message_type is not None:
            sub = _filled(_cls(field.message_type), depth + 1)
            if field.is_repeated:
                getattr(msg, field.name).extend([sub, sub])
            else:
                getattr(msg, field.name).CopyFrom(sub)
            continue
        if field.type == field.TYPE_STRING:
            value = f"{field.name}-x"
        elif field.type == field.TYPE_BOOL:
            value = True
        elif field.enum_type is not None:
            value = 2
        else:
            value = 1_234_567_890_123
        if field.is_repeated:
            getattr(msg, field.name).extend([value, value])
        else:
            setattr(msg, field.name, value)
    return msg


ALL_MESSAGES = [
    getattr(mod, name)
    for mod in (dra_v1_pb2, dra_v1beta1_pb2, health_v1alpha1_pb2, pluginregistration_pb2)
    for name in mod.DESCRIPTOR.message_types_by_name
]


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda c: c.DESCRIPTOR.full_name)
def test_round_trip_every_message(cls: type[pb_message.Message]) -> None:
    msg = _filled(cls)
    again = cls.FromString(msg.SerializeToString())
    assert again == msg
    if cls.DESCRIPTOR.fields:
        assert msg.ListFields()
