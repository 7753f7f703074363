"""The public surfaces of cnidra.kube and cnidra.publishing are exactly what they export."""

from __future__ import annotations

import cnidra.kube
import cnidra.publishing


def test_kube_exports() -> None:
    assert cnidra.kube.__all__ == sorted(cnidra.kube.__all__)
    assert {"KubeClient", "connect", "ApiInfo", "ClaimCache", "StatusWriter", "Reflector",
            "WatchEvent", "Backoff"} <= set(cnidra.kube.__all__)
    for name in cnidra.kube.__all__:
        assert getattr(cnidra.kube, name) is not None


def test_publishing_exports() -> None:
    assert {"Publisher", "build_slices", "compile_filter", "CompiledFilter"} <= set(
        cnidra.publishing.__all__)
    for name in cnidra.publishing.__all__:
        assert getattr(cnidra.publishing, name) is not None
    assert cnidra.publishing.__doc__ and "Limits" in cnidra.publishing.__doc__
    assert cnidra.kube.__doc__ and "lightkube" in cnidra.kube.__doc__
