"""Settings: flags over environment over defaults, and precise errors."""

from __future__ import annotations

import argparse

import pytest

from cnidra.errors import ConfigError
from cnidra.runtime._settings import Settings, add_arguments, from_sources


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_match_production_paths() -> None:
    s = from_sources(parse(), {"NODE_NAME": "kind-worker"}).validate()
    assert s.node_name == "kind-worker"
    assert s.plugin_dir == "/var/lib/kubelet/plugins/cni.dra.networking.x-k8s.io"
    assert s.cache_dir == "/var/lib/cnidra/cni"
    assert s.nri_socket == "/var/run/nri/nri.sock"
    assert "host-device" not in s.allowed_plugins


def test_flag_beats_environment_beats_default() -> None:
    env = {"CNIDRA_NODE_NAME": "from-env", "CNIDRA_CNI_EXEC_TIMEOUT": "3",
           "CNIDRA_CNI_BIN_DIRS": "/a, /b", "CNIDRA_REQUIRE_MASTER_IS_ALLOCATED": "false"}
    s = from_sources(parse("--node-name", "from-flag"), env)
    assert s.node_name == "from-flag"
    assert s.cni_exec_timeout == 3.0
    assert s.cni_bin_dirs == ("/a", "/b")
    assert s.require_master_is_allocated is False


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        ((), "node-name"),
        (("--node-name", "n", "--nri-plugin-index", "5"), "nri-plugin-index"),
        (("--node-name", "n", "--log-format", "xml"), "log-format"),
        (("--node-name", "n", "--metrics-address", "localhost"), "metrics-address"),
        (("--node-name", "n", "--cni-exec-timeout", "0"), "cni-exec-timeout"),
    ],
)
def test_bad_settings_name_the_flag(argv: tuple[str, ...], path: str) -> None:
    with pytest.raises(ConfigError) as exc:
        from_sources(parse(*argv), {}).validate()
    assert exc.value.path == path


def test_bad_boolean_and_number_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not a boolean"):
        from_sources(None, {"CNIDRA_INCLUDE_DEFAULT_ROUTE_UPLINK": "maybe"})
    with pytest.raises(ConfigError, match="not a number"):
        from_sources(None, {"CNIDRA_CNI_EXEC_TIMEOUT": "soon"})


def test_metrics_address_forms() -> None:
    assert Settings(metrics_address=":9177").metrics_host_port() == ("0.0.0.0", 9177)
    assert Settings(metrics_address="127.0.0.1:0").metrics_host_port() == ("127.0.0.1", 0)


def test_boolean_flags_take_an_optional_value() -> None:
    assert from_sources(parse("--cleanup-on-exit"), {}).cleanup_on_exit is True
    assert from_sources(parse("--cleanup-on-exit=false"), {}).cleanup_on_exit is False
    assert from_sources(parse(), {"CNIDRA_CLEANUP_ON_EXIT": "yes"}).cleanup_on_exit is True
    assert from_sources(parse(), {}).cleanup_on_exit is False


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (("--log-level", "loud"), "log-level"),
        (("--driver-name", "Not_A_Domain"), "driver-name"),
        (("--shutdown-timeout", "0"), "shutdown-timeout"),
        (("--inventory-poll-seconds", "-1"), "inventory-poll-seconds"),
        (("--cni-bin-dirs", ","), "cni-bin-dirs"),
    ],
)
def test_more_bad_settings_name_the_flag(argv: tuple[str, ...], path: str) -> None:
    with pytest.raises(ConfigError) as exc:
        from_sources(parse("--node-name", "n", *argv), {}).validate()
    assert exc.value.path == path


def test_help_names_environment_and_default() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "[env CNIDRA_STATE_DIR; default: /var/lib/cnidra]" in text
    assert "[env CNIDRA_CNI_BIN_DIRS; default: /opt/cni/bin,/usr/lib/cni]" in text
    assert "CNIDRA_KUBECONFIG; default: none]" in text
