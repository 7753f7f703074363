# The README's commands. `make test` is what CI runs (after installing everything in .ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint typecheck layers protos bench
setup:
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	VENV=$(VENV) scripts/install-helm

demo:
	$(VENV)/bin/cnidra demo

test:
	$(VENV)/bin/pytest -q

lint:
	$(VENV)/bin/ruff check src tests bench

typecheck:
	$(VENV)/bin/mypy

layers:
	$(VENV)/bin/lint-imports

bench:
	$(PY) -m bench

protos:  # regenerate all gRPC/ttrpc code from our .proto files (tests check it is in sync)
	$(PY) -m cnidra.kubelet._proto.generate
	$(PY) -m cnidra.ttrpc._proto.generate
	$(PY) -m cnidra.nri._proto.generate
