"""``cnidra validate``'s input and output: the objects read from the files given (multi-document
YAML, JSON, ``List`` objects, whose items become documents of their own) and the findings on them
(``FILE: Kind ns/name: field.path: what is wrong``).

Limits: no schema check here; what a document is (kind, ``resource.k8s.io`` version) is
:mod:`cnidra.cli._validate_checks`' job. An unreadable or unparseable file is a ``ConfigError``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cnidra.errors import ConfigError

# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Document:
    """One object read from a file (``List`` items are documents of their own)."""

    file: str
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def key(self) -> str:
        meta = self.obj.get("metadata") or {}
        name = str(meta.get("name") or meta.get("generateName") or "<unnamed>")
        if self.kind == "DeviceClass":
            return name
        return f"{meta.get('namespace') or 'default'}/{name}"


def load_documents(path: str) -> list[Document]:
    """The objects in ``path`` (``-`` is stdin). Raises ``ConfigError`` when unreadable."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        raw = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML or JSON: {_yaml_problem(exc)}") from exc
    docs: list[Document] = []
    for item in raw:
        docs.extend(_expand(path, item))
    return docs


def _expand(path: str, item: Any) -> Iterator[Document]:
    if item is None:
        return
    if not isinstance(item, Mapping):
        raise ConfigError(f"{path}: a document is {type(item).__name__}, not an object")
    kind = str(item.get("kind", ""))
    if kind.endswith("List") and isinstance(item.get("items"), list):
        # the API server leaves kind/apiVersion off the items of a typed list (FooList)
        defaults = {"kind": kind[:-4], "apiVersion": item.get("apiVersion")} if kind != "List" \
            else {}
        for sub in item["items"]:
            typed = {**defaults, **sub} if isinstance(sub, Mapping) and defaults and (
                "kind" not in sub) else sub
            yield from _expand(path, typed)
        return
    yield Document(path, item)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem



# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    file: str
    kind: str
    key: str
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        level = "warning: " if self.warning else ""
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}: {self.kind} {self.key}: {where}{level}{self.message}"


@dataclass
class Report:
    doc: Document
    findings: list[Finding]

    def error(self, path: str, message: str) -> None:
        self.findings.append(Finding(self.doc.file, self.doc.kind, self.doc.key, path, message))

    def warn(self, path: str, message: str) -> None:
        self.findings.append(
            Finding(self.doc.file, self.doc.kind, self.doc.key, path, message, warning=True)
        )

    def config_error(self, exc: ConfigError, prefix: str = "") -> None:
        nested = exc.under(prefix) if prefix else exc
        self.error(nested.path, nested.message)

