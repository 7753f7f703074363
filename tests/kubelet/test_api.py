"""The public surface of cnidra.kubelet and cnidra.sim.kubelet."""

from __future__ import annotations

import cnidra.kubelet
import cnidra.sim.kubelet
from cnidra.claims import ClaimState
from cnidra.kubelet import ClaimPreparer, HealthSource


def test_exports() -> None:
    assert sorted(cnidra.kubelet.__all__) == sorted([
        "DEFAULT_PLUGINS_DIR", "DEFAULT_REGISTRY_DIR", "DRA_V1", "DRA_V1BETA1",
        "HEALTH_V1ALPHA1", "MAX_SOCKET_PATH", "PREPARE", "UNPREPARE", "ClaimPreparer",
        "HealthSource", "KubeletPlugin", "LockTimeoutError", "OnCall", "SocketPaths",
        "socket_paths",
    ])
    assert sorted(cnidra.sim.kubelet.__all__) == sorted([
        "KNOWN_SERVICES", "ClaimLike", "KubeletCallError", "KubeletStandIn", "RegisteredPlugin"])
    for module in (cnidra.kubelet, cnidra.sim.kubelet):
        assert module.__doc__ and "Limits" in module.__doc__
        for name in module.__all__:
            assert hasattr(module, name)


def as_preparer(state: ClaimState) -> ClaimPreparer:
    return state  # mypy checks that ClaimState satisfies the protocol


def test_protocols_name_what_the_plugin_calls() -> None:
    assert callable(as_preparer)
    assert {"fetch", "apply_prepare", "unprepare"} <= set(ClaimPreparer.__dict__)
    assert {"device_health", "wait_health"} <= set(HealthSource.__dict__)
