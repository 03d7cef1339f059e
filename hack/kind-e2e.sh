#!/usr/bin/env bash
# End to end on kind: the same suite (tests/e2e) that CI runs on the embedded cluster's real
# node, pointed at a kind cluster. Builds both images, loads them into kind, and runs
# pytest with ATOMIC_E2E_KUBECONFIG: `helm install` of the chart from the images, the
# examples answering through their Services, a Secret rotation, upgrade and uninstall.
#
# Needs Docker (with a registry for kind's node image), kind and Python 3.12 on PATH, and
# the repository's venv (`make venv`). Run from anywhere:
#   hack/kind-e2e.sh                 # create the cluster, run, delete the cluster
#   KEEP_CLUSTER=1 hack/kind-e2e.sh  # leave the cluster up to look around
# kind cannot run on the project's own machines (its node image comes from a registry);
# .github/workflows/kind-e2e.yaml runs this on hosted CI.
set -euo pipefail

CLUSTER=${CLUSTER:-atomic-e2e}
TAG=${TAG:-e2e}
OPERATOR_IMAGE=atomic-operator:${TAG}
RUNTIME_IMAGE=atomic-agent-runtime:${TAG}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KUBECONFIG_FILE=$(mktemp)

cleanup() {
  local status=$?
  if [ -z "${KEEP_CLUSTER:-}" ]; then kind delete cluster --name "$CLUSTER" || true; fi
  rm -f "$KUBECONFIG_FILE"
  exit "$status"
}
trap cleanup EXIT

for tool in docker kind; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is not on PATH" >&2; exit 2; }
done
[ -x "$ROOT/.venv/bin/pytest" ] || { echo "kind-e2e: run 'make venv' first" >&2; exit 2; }

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"

docker build -t "$OPERATOR_IMAGE" "$ROOT"
docker build -t "$RUNTIME_IMAGE" -f "$ROOT/agent_image/Dockerfile" "$ROOT"
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$RUNTIME_IMAGE"

cd "$ROOT"
ATOMIC_E2E_KUBECONFIG=$KUBECONFIG_FILE ATOMIC_E2E_OPERATOR_IMAGE=$OPERATOR_IMAGE \
  ATOMIC_E2E_RUNTIME_IMAGE=$RUNTIME_IMAGE .venv/bin/pytest -p no:cacheprovider tests/e2e -v
