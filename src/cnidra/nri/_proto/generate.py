"""Regenerate the Python code for the .proto files beside this file.

    python -m cnidra.nri._proto.generate [--out DIR]

Runs grpcio-tools' protoc with mypy-protobuf's plugin on every ``*.proto`` here, with ``src/`` as
the import root, so the modules are ``cnidra.nri._proto.<name>_pb2`` (``.py`` and ``.pyi``).
The output is a pure function of the .proto files and the pinned generator versions, which a
test checks by regenerating into a temporary directory and comparing byte for byte.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[2]  # .../src
PACKAGE_DIR = HERE.relative_to(SRC)


def proto_files() -> list[Path]:
    return sorted(HERE.glob("*.proto"))


def _plugin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install mypy-protobuf (pip install -e '.[test]')")
    return found


def generate(out: Path) -> list[Path]:
    """Generate into ``out`` (the import root); returns the files written, sorted."""
    target = out / PACKAGE_DIR
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{SRC}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--python_out={out}", f"--mypy_out={out}",
        *(str(p.relative_to(SRC)) for p in proto_files()),
    ]
    done = subprocess.run(cmd, cwd=SRC, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"protoc failed ({done.returncode}): {done.stderr.strip()}")
    return sorted(p for p in target.iterdir() if "_pb2" in p.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SRC, help="import root to write into")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)


if __name__ == "__main__":
    main()
