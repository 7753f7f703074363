"""The manifests shown in docs/ pass ``cnidra validate`` (and the snippets compile as CEL)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from cli.clirun import cnidra

from cnidra.cel import compile_selector

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def _blocks(name: str) -> list[str]:
    return BLOCK.findall((DOCS / name).read_text())


@pytest.mark.parametrize("page", ["config-api.md", "admin-policy.md", "install.md"])
def test_full_manifests_in_the_docs_validate_clean(
        page: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = []
    for n, block in enumerate(_blocks(page)):
        docs = [d for d in yaml.safe_load_all(block) if d]
        if any(isinstance(d, dict) and str(d.get("apiVersion", "")).startswith(
                "resource.k8s.io/") for d in docs):
            path = tmp_path / f"{n}.yaml"
            path.write_text(block)
            files.append(str(path))
    if page != "install.md":
        assert files, f"{page} shows no manifests"
    if not files:
        return
    run = cnidra(capsys, "validate", *files)
    assert (run.code, run.out) == (0, ""), run.out


def test_selector_snippets_compile() -> None:
    expressions = []
    for page in ("attributes.md", "config-api.md", "admin-policy.md"):
        for block in _blocks(page):
            expressions += re.findall(r"expression: (device\..*)", block)
            expressions += [" ".join(m.split()) for m in re.findall(
                r"expression: >-\n((?:\s+.+\n)+)", block)]
    assert len(expressions) >= 5
    for expression in expressions:
        compile_selector(expression.strip().strip("'"))
