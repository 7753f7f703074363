"""Regenerate the Python code of the .proto files beside this file (``make protos``).

    python -m cnidra.ttrpc._proto.generate [--out DIR]

See ``cnidra._protogen``: the output is a pure function of the .proto files, checked by a test.
"""

from __future__ import annotations

from pathlib import Path

from cnidra import _protogen

HERE = Path(__file__).resolve().parent


def generate(out: Path) -> list[Path]:
    """Generate into ``out`` (the import root); returns the files written, sorted."""
    return _protogen.generate(HERE, out, grpc=False)


if __name__ == "__main__":
    _protogen.main(HERE, grpc=False)
