"""Pure parts of the plugin: ids, event masks, pod -> Sandbox; the generated code is current."""

from __future__ import annotations

from pathlib import Path

import pytest
from nri.nrikit import Recorder

import cnidra.nri
from cnidra.errors import ConfigError
from cnidra.nri import (
    POD_EVENTS_MASK,
    NRIPlugin,
    api,
    check_plugin_id,
    event_mask,
    netns_path,
    sandbox_from_pod,
)
from cnidra.nri._pods import live_sandbox
from cnidra.nri._proto import generate


def test_public_api() -> None:
    assert sorted(cnidra.nri.__all__) == sorted([
        "DEFAULT_SOCKET", "NRI_VERSION", "PLUGIN_SERVICE", "POD_EVENTS_MASK", "RUNTIME_SERVICE",
        "NRIPlugin", "OnHook", "PodHandler", "api", "check_plugin_id", "event_mask",
        "netns_path", "sandbox_from_pod"])
    assert cnidra.nri.DEFAULT_SOCKET == "/var/run/nri/nri.sock"


def test_event_mask_matches_the_runtime_bits() -> None:
    assert POD_EVENTS_MASK == 0x7
    assert event_mask(api.STOP_CONTAINER) == 0x200
    assert event_mask(api.VALIDATE_CONTAINER_ADJUSTMENT) == 0x2000
    with pytest.raises(ValueError, match="0 means every event"):
        event_mask()
    with pytest.raises(ValueError, match="not an NRI event"):
        event_mask(api.LAST)


@pytest.mark.parametrize(("name", "index", "path"), [
    ("cnidra", "5", "nri.index"), ("cnidra", "050", "nri.index"), ("cnidra", "ab", "nri.index"),
    ("cni dra", "50", "nri.name"), ("", "50", "nri.name"), ("cnidra/x", "50", "nri.name"),
])
def test_plugin_ids_are_checked_locally(name: str, index: str, path: str) -> None:
    with pytest.raises(ConfigError) as exc:
        check_plugin_id(name, index)
    assert exc.value.path == path
    with pytest.raises(ConfigError):
        NRIPlugin(Recorder(), name=name, index=index)


def test_valid_ids() -> None:
    check_plugin_id("cnidra_v1.2+x-y", "00")
    assert NRIPlugin(Recorder(), index="99").plugin_id == "99-cnidra"


def test_sandbox_from_pod() -> None:
    pod = api.PodSandbox(id="abc", uid="u1", name="p", namespace="ns", linux=api.LinuxPodSandbox(
        namespaces=[api.LinuxNamespace(type="ipc"),
                    api.LinuxNamespace(type="network", path="/run/netns/x")]))
    sb = sandbox_from_pod(pod)
    assert (sb.id, sb.pod_uid, sb.pod_name, sb.pod_namespace, sb.netns) == (
        "abc", "u1", "p", "ns", "/run/netns/x")
    del pod.linux.namespaces[1]
    assert netns_path(pod) is None
    pod.linux.namespaces.append(api.LinuxNamespace(type="network", path=""))
    assert sandbox_from_pod(pod).netns is None
    with pytest.raises(ConfigError, match=r"pod\.uid: is empty"):
        sandbox_from_pod(api.PodSandbox(id="abc"))
    with pytest.raises(ConfigError, match=r"pod\.id: is empty"):
        sandbox_from_pod(api.PodSandbox(uid="u"))


def test_live_sandbox_of_a_synchronize_entry() -> None:
    ns = api.LinuxNamespace(type="network", path="/run/netns/x")
    full = api.PodSandbox(id="sb", uid="u", name="web", namespace="default",
                          linux=api.LinuxPodSandbox(namespaces=[ns]))
    got = live_sandbox(full)
    assert got is not None
    assert (got.id, got.pod_uid, got.pod_name, got.pod_namespace, got.netns) == (
        "sb", "u", "web", "default", "/run/netns/x")
    # no uid: still live (nothing of it is detached), never caught up; no id: nothing to go by
    no_uid = live_sandbox(api.PodSandbox(id="sb2"))
    assert no_uid is not None and no_uid.pod_uid == "" and no_uid.netns is None
    assert live_sandbox(api.PodSandbox(uid="u")) is None


def test_field_numbers_are_the_protocols() -> None:
    def numbers(message: type[object]) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]
    assert numbers(api.ConfigureResponse) == {"events": 2}
    assert numbers(api.SynchronizeRequest) == {"pods": 1, "more": 3}
    assert numbers(api.SynchronizeResponse) == {"more": 2}
    assert numbers(api.StateChangeEvent) == {"event": 1, "pod": 2}
    assert numbers(api.PodSandbox) == {"id": 1, "name": 2, "uid": 3, "namespace": 4,
                                       "labels": 5, "annotations": 6, "runtime_handler": 7,
                                       "linux": 8, "pid": 9, "ips": 10}
    assert numbers(api.LinuxPodSandbox)["namespaces"] == 5
    assert numbers(api.RegisterPluginRequest) == {"plugin_name": 1, "plugin_idx": 2,
                                                  "NRI_version": 3}
    assert api.DESCRIPTOR.package == "nri.pkg.api.v1alpha1"


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    written = generate.generate(tmp_path)
    assert sorted(p.name for p in written) == ["api_pb2.py", "api_pb2.pyi"]
    for path in written:
        assert path.read_bytes() == (generate.HERE / path.name).read_bytes(), path.name
