#!/bin/sh
# Re-render deploy/manifests/cnidra.yaml from the Helm chart with its default values.
# Needs helm 3.x or 4.x on PATH. tests/deploy compares the two whenever helm is available.
set -eu
cd "$(dirname "$0")/.."
helm lint --strict deploy/helm/cnidra
{
  sed -n '1,3p' deploy/manifests/cnidra.yaml
  helm template cnidra deploy/helm/cnidra --namespace kube-system | grep -v '^# Source:'
} > deploy/manifests/cnidra.yaml.new
mv deploy/manifests/cnidra.yaml.new deploy/manifests/cnidra.yaml
