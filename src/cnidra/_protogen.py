"""Regenerating the Python code of our .proto files (a build tool, used by each package's
``_proto/generate.py`` and by ``make protos``; needs the test extras: grpcio-tools,
mypy-protobuf).

protoc runs with ``src/`` as the import root, so generated modules import each other as
``cnidra.<package>._proto.<name>_pb2``. The output is a pure function of the .proto files and
the pinned generator versions (pyproject), which each package's tests check by regenerating into
a temporary directory and comparing byte for byte with the committed files.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]  # .../src


def _plugin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install mypy-protobuf (pip install -e '.[test]')")
    return found


def generate(proto_dir: Path, out: Path, *, grpc: bool) -> list[Path]:
    """Generate every ``*.proto`` in ``proto_dir`` into ``out`` (an import root), with gRPC
    stubs when ``grpc``; returns the generated files, sorted."""
    target = out / proto_dir.relative_to(SRC)
    target.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{SRC}",
           f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
           f"--python_out={out}", f"--mypy_out={out}"]
    if grpc:
        cmd += [f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
                f"--grpc_python_out={out}", f"--mypy_grpc_out={out}"]
    cmd += [str(p.relative_to(SRC)) for p in sorted(proto_dir.glob("*.proto"))]
    done = subprocess.run(cmd, cwd=SRC, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"protoc failed ({done.returncode}): {done.stderr.strip()}")
    return sorted(p for p in target.iterdir() if "_pb2" in p.name)


def main(proto_dir: Path, *, grpc: bool, argv: list[str] | None = None) -> None:
    """The command line of a package's ``generate`` module: ``[--out DIR]``."""
    parser = argparse.ArgumentParser(
        description=f"Regenerate the Python code of the .proto files in {proto_dir}")
    parser.add_argument("--out", type=Path, default=SRC, help="import root to write into")
    args = parser.parse_args(argv)
    for path in generate(proto_dir, args.out, grpc=grpc):
        print(path)
