"""Run ``cnidra.cli.main`` in-process and capture what it prints."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cnidra.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def cnidra(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    code = main(list(argv))
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)
