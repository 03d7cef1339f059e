#!/usr/bin/env bash
# End to end on a real cluster with real containers: kind, both images, the chart, the
# loopback LLM (tests/fakes/openai_server.py) as a Deployment, the examples, and one call
# to an agent and one to a pipeline through their Services, asserting typed answers.
#
# Needs Docker, kind, kubectl, helm and python3 on PATH. Run from anywhere:
#   hack/kind-e2e.sh                 # create the cluster, run, delete the cluster
#   KEEP_CLUSTER=1 hack/kind-e2e.sh  # leave the cluster up to look around
# It is run by .github/workflows/kind-e2e.yaml on hosted CI; it has never run on the
# project's own machines (no Docker engine there), only been linted (shellcheck).
set -euo pipefail

CLUSTER=${CLUSTER:-atomic-e2e}
NAMESPACE=${NAMESPACE:-demo}
TAG=${TAG:-e2e}
OPERATOR_IMAGE=atomic-operator:${TAG}
RUNTIME_IMAGE=atomic-runtime:${TAG}
TIMEOUT=${TIMEOUT:-180s}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d)
FORWARDS=()

log() { printf '\n==> %s\n' "$*"; }

cleanup() {
  local status=$?
  for pid in "${FORWARDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    log "failed: state of namespace ${NAMESPACE} and the operator's log"
    kubectl -n "$NAMESPACE" get atomicagents,atomicpipelines,deployments,pods -o wide || true
    kubectl -n "$NAMESPACE" describe atomicagents,atomicpipelines || true
    kubectl -n atomic-system logs deploy/atomic-operator --tail=200 || true
  fi
  if [ -z "${KEEP_CLUSTER:-}" ]; then kind delete cluster --name "$CLUSTER" || true; fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

for tool in docker kind kubectl helm python3; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is not on PATH" >&2; exit 2; }
done

log "kind cluster ${CLUSTER}"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
kubectl config use-context "kind-${CLUSTER}"

log "images ${OPERATOR_IMAGE} and ${RUNTIME_IMAGE}"
docker build -t "$OPERATOR_IMAGE" "$ROOT"
docker build -t "$RUNTIME_IMAGE" -f "$ROOT/agent_image/Dockerfile" "$ROOT"
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$RUNTIME_IMAGE"

log "chart"
helm upgrade --install atomic-operator "$ROOT/charts/atomic-operator" \
  --namespace atomic-system --create-namespace --wait --timeout "$TIMEOUT" \
  --set image.repository=atomic-operator --set image.tag="$TAG" \
  --set image.pullPolicy=Never --set runtimeImage="$RUNTIME_IMAGE"

log "the loopback LLM as a Deployment (the runtime image has its only dependency, uvicorn)"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NAMESPACE" create configmap fake-llm \
  --from-file=openai_server.py="$ROOT/tests/fakes/openai_server.py" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NAMESPACE" apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: fake-llm, labels: {app: fake-llm}}
spec:
  selector: {matchLabels: {app: fake-llm}}
  template:
    metadata: {labels: {app: fake-llm}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532}
      containers:
        - name: fake-llm
          image: ${RUNTIME_IMAGE}
          imagePullPolicy: Never
          command: [python, /fake/openai_server.py, --host=0.0.0.0, --port=8000]
          ports: [{name: http, containerPort: 8000}]
          readinessProbe: {tcpSocket: {port: http}, periodSeconds: 2}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts: [{name: src, mountPath: /fake, readOnly: true}]
      volumes: [{name: src, configMap: {name: fake-llm}}]
---
apiVersion: v1
kind: Service
metadata: {name: fake-llm}
spec:
  selector: {app: fake-llm}
  ports: [{name: http, port: 8000, targetPort: http}]
EOF
kubectl -n "$NAMESPACE" rollout status deploy/fake-llm --timeout "$TIMEOUT"

log "examples, pointed at the loopback LLM"
BASE_URL="http://fake-llm.${NAMESPACE}.svc.cluster.local:8000/v1"
for example in openai-credentials task-processor content-analyzer analysis-to-tasks; do
  python3 - "$ROOT/examples/${example}.yaml" "$BASE_URL" >"$WORK/${example}.yaml" <<'EOF'
import json, sys
import yaml  # PyYAML: the workflow installs it; locally `pip install pyyaml`
doc = yaml.safe_load(open(sys.argv[1]))
if doc["kind"] == "AtomicAgent":
    doc["spec"]["model"]["baseURL"] = sys.argv[2]
print(json.dumps(doc))
EOF
  kubectl -n "$NAMESPACE" apply -f "$WORK/${example}.yaml"
done
kubectl -n "$NAMESPACE" wait --for=condition=Ready --timeout "$TIMEOUT" \
  atomicagent/task-processor atomicagent/content-analyzer atomicpipeline/analysis-to-tasks

# POST a JSON body to /run of a kind/name through its Service (found from status.endpoint)
# and print the answer.
call() {
  local kind=$1 name=$2 body=$3 endpoint service port local_port pid
  endpoint=$(kubectl -n "$NAMESPACE" get "$kind/$name" -o jsonpath='{.status.endpoint}')
  service=${endpoint#http://}; service=${service%%.*}
  port=$(kubectl -n "$NAMESPACE" get "service/$service" \
    -o jsonpath='{.spec.ports[?(@.name=="http")].port}')
  local_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  kubectl -n "$NAMESPACE" port-forward "service/$service" "${local_port}:${port}" \
    >"$WORK/forward-${name}.log" 2>&1 &
  pid=$!
  FORWARDS+=("$pid")
  for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:${local_port}/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS -X POST -H 'content-type: application/json' --data "$body" \
    "http://127.0.0.1:${local_port}/run"
  kill "$pid" 2>/dev/null || true
}

log "an agent through its Service"
call atomicagent task-processor '{"description": "Write the release notes", "priority": "high"}' \
  >"$WORK/agent.json"
python3 - "$WORK/agent.json" <<'EOF'
import json, sys
answer = json.load(open(sys.argv[1]))
assert isinstance(answer["task_id"], str) and isinstance(answer["status"], str), answer
assert isinstance(answer["result"], str), answer
assert isinstance(answer["confidence"], (int, float)) and 0 <= answer["confidence"] <= 1, answer
print("agent answered a TaskOutput:", answer)
EOF

log "a pipeline through its Service"
call atomicpipeline analysis-to-tasks '{"content": "Release 0.2 adds pipelines and kind."}' \
  >"$WORK/pipeline.json"
python3 - "$WORK/pipeline.json" <<'EOF'
import json, sys
answer = json.load(open(sys.argv[1]))
tasks = answer.get("output", answer) if isinstance(answer, dict) else answer
assert isinstance(tasks, list) and tasks, answer
for task in tasks:
    assert isinstance(task["task_id"], str) and 0 <= task["confidence"] <= 1, task
print(f"pipeline answered {len(tasks)} TaskOutputs:", tasks)
EOF

log "kind e2e passed"
