"""List the benchmarks in this folder."""

from pathlib import Path

for path in sorted(Path(__file__).parent.glob("bench_*.py")):
    print(f"python -m bench.{path.stem}")
