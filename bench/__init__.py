"""Benchmarks: each measures cnidra against the raw operation it wraps, as a ratio, in one run.

Run one with ``python -m bench.<name>``; ``python -m bench`` lists them.
"""
