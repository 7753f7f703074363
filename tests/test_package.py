"""The package's public surface and the command line's shape."""

from __future__ import annotations

import asyncio

import pytest

import cnidra
from cnidra import errors
from cnidra.cli import build_parser


def test_version_is_exported() -> None:
    assert cnidra.__all__ == ["__version__"]
    assert cnidra.__version__.count(".") == 2


def test_error_tree_groups_by_reaction() -> None:
    assert issubclass(errors.ConflictError, errors.KubeAPIError)
    assert errors.ConflictError("x").retryable
    assert not errors.ConfigError("bad", "spec.ifName").retryable
    assert str(errors.ConfigError("bad", "spec.ifName")) == "spec.ifName: bad"
    assert errors.ConfigError("bad", "ifName").under("parameters").path == "parameters.ifName"
    assert errors.ConfigError("bad", "[0].type").under("plugins").path == "plugins[0].type"
    err = errors.CNIError(7, "invalid config", "no master", plugin="macvlan", verb="ADD")
    assert err.code == 7
    assert "macvlan ADD" in str(err)
    assert errors.CNIError(11, "again").retryable
    assert errors.KubeAPIError("down", 503).retryable
    assert not errors.KubeAPIError("bad", 422).retryable


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--help"])
    assert exc.value.code == 0
    assert "COMMAND" in capsys.readouterr().out


async def test_leak_guard_sees_tasks() -> None:
    task = asyncio.create_task(asyncio.sleep(0))
    await task
