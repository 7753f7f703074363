# The README's commands. `make test` is what CI runs (after installing everything in .ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint typecheck layers protos bench
DEB_PACKAGES := containernetworking-plugins iproute2 iputils-ping

setup:  # Debian packages (as root), the virtualenv with cnidra and its test tools, helm
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi; \
	else echo "note: install $(DEB_PACKAGES) with apt-get as root for the demo and the root tests"; fi
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
