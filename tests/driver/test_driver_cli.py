"""``cnidra driver`` as a process: settings errors exit 2 with one line, before connecting."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnidra", "driver", *args],
                          capture_output=True, check=False,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def test_bad_device_filter_exits_2_with_one_line() -> None:
    done = run("--node-name", "n1", "--metrics-address", "127.0.0.1:0",
               "--kubeconfig", "/nonexistent", "--device-filter", 'device.attributes["x"')
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(
        "cnidra driver: device-filter: the device filter is not valid CEL: ")


def test_unreadable_kubeconfig_exits_2_naming_it() -> None:
    done = run("--node-name", "n1", "--metrics-address", "127.0.0.1:0",
               "--kubeconfig", "/nonexistent/kubeconfig")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith("cnidra driver: kubeconfig: "), done.stderr


def test_bad_environment_value_names_the_flag() -> None:
    done = subprocess.run([sys.executable, "-m", "cnidra", "driver"],
                          capture_output=True, check=False,
                          text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "NODE_NAME": "n1",
                               "CNIDRA_CNI_EXEC_TIMEOUT": "soon"})
    assert done.returncode == 2
    assert done.stderr == "cnidra driver: cni-exec-timeout: 'soon' is not a number\n"
