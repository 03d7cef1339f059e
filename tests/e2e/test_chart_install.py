"""`helm install` end to end: the operator pod from its image under the chart's exact
securityContext (webhook on, as shipped), the examples running as pods of the runtime image,
each answering through its Service, a Secret rotation rolling the agents, `helm upgrade`,
and `helm uninstall` leaving nothing but the CRDs.

The tests of this module run in order against one release: each names what it proves.
Calls go through the API server's service proxy, which works on any cluster.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cluster
from tests.support.kube import eventually

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "atomic-operator"
RELEASE, SYSTEM, DEMO = "atomic-operator", "atomic-system", "demo"
FAKE_LLM = (ROOT / "tests" / "fakes" / "openai_server.py").read_text()
AGENT_INPUTS: dict[str, dict[str, Any]] = {
    "task-processor": {"description": "Write the release notes", "priority": "high"},
    "content-analyzer": {"content": "Checkout takes 9 s on mobile.",
                         "analysis_type": "recommendations"},
    "sentiment-analyzer": {"text": "The support team was kind."},
    "report-writer": {"summary": "Checkout is slow.", "recommendations": ["Compress images"]},
}
PIPELINE_INPUTS: dict[str, dict[str, Any]] = {
    "analysis-to-tasks": {"content": "Release 0.2 adds pipelines."},
    "parallel-review": {"content": "Fast checkout, late receipts."},
}
READY_TIMEOUT = 240.0


def _image_values(cluster: Cluster) -> list[str]:
    repository, _, tag = cluster.operator_image.rpartition(":")
    return [f"--set=image.repository={repository}", f"--set=image.tag={tag}",
            "--set=image.pullPolicy=IfNotPresent", f"--set=runtimeImage={cluster.runtime_image}"]


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[Cluster]:
    started = time.monotonic()
    cluster.helm("install", RELEASE, str(CHART), f"--namespace={SYSTEM}", "--create-namespace",
                 "--wait", "--timeout=4m", *_image_values(cluster))
    cluster.timings["helm install --wait"] = time.monotonic() - started
    yield cluster
    # the last test uninstalls; this only cleans up after a failure before it
    if not os.environ.get("ATOMIC_E2E_KEEP"):
        cluster.helm("uninstall", RELEASE, f"--namespace={SYSTEM}", "--wait", check=False)


def _fake_llm(namespace: str, image: str, name: str = "fake-llm", latency: float = 0.0
              ) -> str:
    pod_security = {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {
        "type": "RuntimeDefault"}}
    container_security = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                          "capabilities": {"drop": ["ALL"]}}
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
         "data": {"openai_server.py": FAKE_LLM}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": name, "labels": {"app": name}},
         "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
             "metadata": {"labels": {"app": name}},
             "spec": {"securityContext": pod_security, "containers": [{
                 "name": "fake-llm", "image": image, "imagePullPolicy": "IfNotPresent",
                 "command": ["python", "/fake/openai_server.py", "--host=0.0.0.0",
                             "--port=8000", f"--latency={latency}"],
                 "ports": [{"name": "http", "containerPort": 8000}],
                 "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
                 "securityContext": container_security,
                 "volumeMounts": [{"name": "src", "mountPath": "/fake", "readOnly": True}]}],
                 "volumes": [{"name": "src", "configMap": {"name": name}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"selector": {"app": name},
                  "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]}},
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def _examples(base_url: str) -> str:
    docs: list[dict[str, Any]] = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "AtomicAgent":
                doc["spec"]["model"]["baseURL"] = base_url
            if doc:
                docs.append(doc)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def _ready(cluster: Cluster, kind: str, name: str) -> bool:
    obj = cluster.json("-n", DEMO, "get", kind, name)
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in obj.get("status", {}).get("conditions", []))


@pytest.fixture(scope="module")
def examples(release: Cluster) -> Cluster:
    cluster = release
    cluster.kubectl("create", "namespace", DEMO)
    cluster.kubectl("-n", DEMO, "apply", "-f", "-",
                    input_text=_fake_llm(DEMO, cluster.runtime_image))
    started = time.monotonic()
    cluster.kubectl("-n", DEMO, "apply", "-f", "-", input_text=_examples(
        f"http://fake-llm.{DEMO}.svc.cluster.local:8000/v1"))
    for name in AGENT_INPUTS:
        eventually(lambda n=name: _ready(cluster, "atomicagent", n), timeout=READY_TIMEOUT,
                   interval=1, what=f"agent {name} Ready")
    for name in PIPELINE_INPUTS:
        eventually(lambda n=name: _ready(cluster, "atomicpipeline", n), timeout=READY_TIMEOUT,
                   interval=1, what=f"pipeline {name} Ready")
    cluster.timings["examples applied -> all Ready"] = time.monotonic() - started
    return cluster


def call(cluster: Cluster, service: str, body: dict[str, Any]) -> Any:
    """POST /run through the API server's service proxy; the parsed answer."""
    proc = cluster.kubectl("create", "--raw",
                           f"/api/v1/namespaces/{DEMO}/services/{service}:http/proxy/run",
                           "-f", "-", input_text=json.dumps(body))
    return json.loads(proc.stdout)


def _pods(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.json("-n", namespace, "get", "pods", "-l",
                                               selector)["items"]
    return items


def _ready_pods(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    return [p for p in _pods(cluster, namespace, selector)
            if p["status"].get("containerStatuses", [{}])[0].get("ready")]


def test_operator_runs_from_its_image_under_the_charts_security_context(release: Cluster
                                                                        ) -> None:
    cluster = release
    (pod,) = _pods(cluster, SYSTEM, "app.kubernetes.io/name=atomic-operator")
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["restartCount"] == 0, status
    assert status["image"].endswith(cluster.operator_image), status["image"]
    name = pod["metadata"]["name"]
    ids = cluster.kubectl("-n", SYSTEM, "exec", name, "--", "python", "-c",
                          "import os; print(os.getuid(), os.getgid())").stdout.split()
    assert ids == ["10001", "10001"]
    write = cluster.kubectl("-n", SYSTEM, "exec", name, "--", "python", "-c",
                            "open('/written', 'w')", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr, write.stderr
    caps = cluster.kubectl("-n", SYSTEM, "exec", name, "--", "python", "-c",
                           "print([l for l in open('/proc/self/status') "
                           "if l.startswith('CapEff')][0].split()[1])").stdout.strip()
    assert int(caps, 16) == 0, f"effective capabilities {caps}"


def test_operator_image_without_pod_id_does_not_crash(release: Cluster) -> None:
    """The chart's pod, minus the POD_ID the chart sets: kopf must not need a passwd entry."""
    cluster = release
    deployment = cluster.json("-n", SYSTEM, "get", "deployment", RELEASE)
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != "POD_ID"]
    # a second operator would fight the release's: watch a namespace that has nothing
    container["args"] = [a for a in container["args"] if not a.startswith("--namespace")]
    container["args"].append("--namespace=no-such-namespace")
    env = {e["name"]: e for e in container["env"]}
    env.pop("ATOMIC_OPERATOR_WEBHOOK_ENABLED", None)
    container["env"] = list(env.values())
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "operator-without-pod-id", "namespace": SYSTEM},
           "spec": {**template["spec"], "restartPolicy": "Never"}}
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(pod))
    try:
        def ready() -> bool:
            got = cluster.json("-n", SYSTEM, "get", "pod", "operator-without-pod-id")
            statuses = got["status"].get("containerStatuses", [])
            assert got["status"]["phase"] != "Failed", cluster.kubectl(
                "-n", SYSTEM, "logs", "operator-without-pod-id", check=False).stdout[-3000:]
            return bool(statuses) and statuses[0]["ready"]
        eventually(ready, timeout=90, interval=0.5, what="operator pod without POD_ID Ready")
        time.sleep(3)  # a crash at start comes within a second of the liveness answering
        got = cluster.json("-n", SYSTEM, "get", "pod", "operator-without-pod-id")
        assert got["status"]["phase"] == "Running", got["status"]
        assert "No username" not in cluster.kubectl("-n", SYSTEM, "logs",
                                                    "operator-without-pod-id").stdout
    finally:
        cluster.kubectl("-n", SYSTEM, "delete", "pod", "operator-without-pod-id",
                        "--wait=false", check=False)


def test_every_example_answers_through_its_service(examples: Cluster) -> None:
    cluster = examples
    for agent in AGENT_INPUTS:
        for pod in _pods(cluster, DEMO, f"atomicagents.io/agent={agent}"):
            assert pod["spec"]["containers"][0]["image"] == cluster.runtime_image
    answer = call(cluster, "task-processor", AGENT_INPUTS["task-processor"])
    assert isinstance(answer["task_id"], str) and 0 <= answer["confidence"] <= 1, answer
    for agent, body in AGENT_INPUTS.items():
        assert isinstance(call(cluster, agent, body), dict), agent
    tasks = call(cluster, "analysis-to-tasks", PIPELINE_INPUTS["analysis-to-tasks"])
    output = tasks.get("output", tasks)
    assert isinstance(output, list) and output, tasks
    assert all(isinstance(t["task_id"], str) for t in output), output
    review = call(cluster, "parallel-review", PIPELINE_INPUTS["parallel-review"])
    assert isinstance(review, dict) and review, review


def _condition(cluster: Cluster, kind: str, name: str, type_: str) -> dict[str, Any] | None:
    obj = cluster.json("-n", DEMO, "get", kind, name)
    return next((c for c in obj.get("status", {}).get("conditions", [])
                 if c["type"] == type_), None)


def test_the_operator_pod_scrapes_the_agents_it_autoscales(examples: Cluster) -> None:
    """task-processor is autoscaled by the operator (mode custom): from its pod, the
    operator reaches the agent pods' metrics port by pod IP, as in any cluster."""
    cluster = examples
    scaling = eventually(
        lambda: (c := _condition(cluster, "atomicagent", "task-processor", "ScalingActive"))
        and c["status"] == "True" and c, timeout=60, interval=1,
        what="task-processor ScalingActive=True")
    assert scaling["reason"] != "MetricsMissing", scaling


def _agent_pod_names(cluster: Cluster) -> dict[str, set[str]]:
    return {agent: {p["metadata"]["name"] for p in
                    _pods(cluster, DEMO, f"atomicagents.io/agent={agent}")}
            for agent in AGENT_INPUTS}


def test_secret_rotation_rolls_the_agents(examples: Cluster) -> None:
    cluster = examples
    before = _agent_pod_names(cluster)
    rotated = cluster.kubectl("-n", DEMO, "create", "secret", "generic", "openai-credentials",
                              "--from-literal=api-key=rotated-key", "--dry-run=client",
                              "-o", "json").stdout
    cluster.kubectl("-n", DEMO, "apply", "-f", "-", input_text=rotated)

    def rolled() -> bool:
        now = _agent_pod_names(cluster)
        return all(now[a] and not (now[a] & before[a]) for a in AGENT_INPUTS) and all(
            _ready(cluster, "atomicagent", a) for a in AGENT_INPUTS)
    eventually(rolled, timeout=READY_TIMEOUT, interval=1,
               what="every agent rolled onto new pods and Ready")
    assert isinstance(call(cluster, "task-processor", AGENT_INPUTS["task-processor"]), dict)


def test_helm_upgrade_keeps_reconciling(examples: Cluster) -> None:
    cluster = examples
    (old,) = _pods(cluster, SYSTEM, "app.kubernetes.io/name=atomic-operator")
    cluster.helm("upgrade", RELEASE, str(CHART), f"--namespace={SYSTEM}", "--wait",
                 "--timeout=4m", *_image_values(cluster), "--set=logFormat=plain")
    eventually(lambda: [p for p in _ready_pods(cluster, SYSTEM,
                                               "app.kubernetes.io/name=atomic-operator")
                        if p["metadata"]["name"] != old["metadata"]["name"]],
               timeout=120, interval=1, what="the upgraded operator pod Ready")
    cluster.kubectl("-n", DEMO, "scale", "atomicagent/sentiment-analyzer", "--replicas=2")
    eventually(lambda: len(_ready_pods(cluster, DEMO,
                                       "atomicagents.io/agent=sentiment-analyzer")) == 2,
               timeout=READY_TIMEOUT, interval=1, what="the upgraded operator scaling an agent")


LOAD = """
import json, sys, threading, time, urllib.request
url, seconds = sys.argv[1], float(sys.argv[2])
body = json.dumps({"description": "Write the release notes", "priority": "high"}).encode()
done = [0]
def loop():
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            req = urllib.request.Request(url, body, {"content-type": "application/json"})
            urllib.request.urlopen(req, timeout=10).read()
            done[0] += 1
        except Exception:
            time.sleep(0.05)
threads = [threading.Thread(target=loop) for _ in range(16)]
[t.start() for t in threads]
[t.join() for t in threads]
print(done[0])
"""


def _hpa_agent(cluster: Cluster, name: str, llm: str, autoscaling: dict[str, Any],
               cpu: str) -> None:
    agent = yaml.safe_load((ROOT / "examples" / "task-processor.yaml").read_text())
    agent["metadata"] = {"name": name}
    agent["spec"]["model"]["baseURL"] = f"http://{llm}.{DEMO}.svc.cluster.local:8000/v1"
    agent["spec"]["autoscaling"] = {"mode": "hpa", "minReplicas": 1, "maxReplicas": 3,
                                    **autoscaling}
    agent["spec"]["resources"] = {"requests": {"cpu": cpu, "memory": "128Mi"}}
    cluster.kubectl("-n", DEMO, "apply", "-f", "-", input_text=json.dumps(agent))
    eventually(lambda: _ready(cluster, "atomicagent", name), timeout=READY_TIMEOUT,
               interval=1, what=f"agent {name} Ready")


def _scale_up_under_load(cluster: Cluster, name: str, timing: str) -> dict[str, Any]:
    """Load the agent from a pod in the cluster until its HPA asks for more replicas and
    a second pod is Ready; the HPA's status at the ask."""
    started = time.monotonic()
    load = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"load-{name}"},
            "spec": {"restartPolicy": "Never", "securityContext": {
                "runAsNonRoot": True, "runAsUser": 65532},
                "containers": [{"name": "load", "image": cluster.runtime_image,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["python", "-c", LOAD,
                                            f"http://{name}.{DEMO}.svc.cluster.local/run",
                                            "150"]}]}}
    cluster.kubectl("-n", DEMO, "apply", "-f", "-", input_text=json.dumps(load))
    try:
        hpa: dict[str, Any] = eventually(
            lambda: (h := cluster.json("-n", DEMO, "get", "hpa", name))
            and h["status"].get("desiredReplicas", 0) > 1 and h,
            timeout=150, interval=2, what=f"the HPA of {name} asking for more replicas")
        cluster.timings[timing] = time.monotonic() - started
        print(f"\n[e2e] HPA {name}: {hpa['status'].get('currentMetrics')} -> "
              f"{hpa['status']['desiredReplicas']} replicas")
        eventually(lambda: len(_ready_pods(cluster, DEMO, f"atomicagents.io/agent={name}")) > 1,
                   timeout=120, interval=1,
                   what=f"more than one {name} pod Ready")
        return hpa
    finally:
        cluster.kubectl("-n", DEMO, "delete", "pod", f"load-{name}", "--wait=false",
                        check=False)


def test_hpa_mode_agent_scales_up_on_cpu(examples: Cluster) -> None:
    """The rendered HPA gets CPU from the resource metrics API (metrics-server scraping the
    kubelet) and scales the agent up under load from a pod inside the cluster."""
    cluster = examples
    _hpa_agent(cluster, "cpu-bound", "fake-llm", {"targetCPUUtilizationPercentage": 30},
               cpu="50m")
    eventually(lambda: "cpu-bound" in cluster.kubectl("top", "pods", "-n", DEMO,
                                                      check=False).stdout,
               timeout=90, interval=2, what="CPU of cpu-bound's pod in the metrics API")
    hpa = _scale_up_under_load(cluster, "cpu-bound", "hpa cpu: load start -> scale-up asked")
    assert any(m["type"] == "Resource" for m in hpa["status"]["currentMetrics"])


def test_hpa_mode_agent_scales_up_on_in_flight_requests(examples: Cluster) -> None:
    """`targetInFlightPerReplica` in mode hpa: a Pods metric agent_inflight_requests, served
    by prometheus-adapter from Prometheus scraping the agents' pods; the model answers in
    1 s, so requests stay in flight while CPU stays low."""
    cluster = examples
    cluster.kubectl("-n", DEMO, "apply", "-f", "-", input_text=_fake_llm(
        DEMO, cluster.runtime_image, name="slow-llm", latency=1.0))
    _hpa_agent(cluster, "busy", "slow-llm", {"targetCPUUtilizationPercentage": 95,
                                             "targetInFlightPerReplica": 2}, cpu="500m")
    raw = f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{DEMO}/pods/*/agent_inflight_requests"
    eventually(lambda: "busy-" in cluster.kubectl("get", "--raw", raw, check=False).stdout,
               timeout=90, interval=2, what="busy's in-flight requests in the custom metrics API")
    hpa = _scale_up_under_load(cluster, "busy", "hpa in-flight: load start -> scale-up asked")
    pods = [m for m in hpa["status"]["currentMetrics"] if m["type"] == "Pods"]
    assert pods and pods[0]["pods"]["metric"]["name"] == "agent_inflight_requests", hpa
    cpu = [m for m in hpa["status"]["currentMetrics"] if m["type"] == "Resource"]
    assert all(m["resource"]["current"]["averageUtilization"] < 95 for m in cpu), cpu


def test_uninstall_leaves_only_the_crds(examples: Cluster) -> None:
    cluster = examples
    # the examples first, as a user would: their children go with them (ownerReferences)
    cluster.kubectl("-n", DEMO, "delete", "atomicpipelines,atomicagents", "--all",
                    "--timeout=120s", timeout=150)
    eventually(lambda: cluster.kubectl(
        "-n", DEMO, "get", "deployments,services,configmaps,horizontalpodautoscalers,"
        "poddisruptionbudgets", "-l", "app.kubernetes.io/managed-by=atomic-operator",
        "-o", "name").stdout.split() == [], timeout=120, interval=1,
        what="every child of the examples collected")
    # the namespace controller waits out the longest grace period of the pods it deleted
    cluster.kubectl("delete", "namespace", DEMO, "--wait=false")
    cluster.helm("uninstall", RELEASE, f"--namespace={SYSTEM}", "--wait", "--timeout=3m")
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    assert sorted(c for c in crds if c.endswith("atomicagents.io")) == [
        "customresourcedefinition.apiextensions.k8s.io/atomicagents.atomicagents.io",
        "customresourcedefinition.apiextensions.k8s.io/atomicpipelines.atomicagents.io"]
    # helm waits for what it installed; the operator's pod goes after its ReplicaSet
    eventually(lambda: cluster.kubectl(
        "get", "all,configmaps,secrets,serviceaccounts,roles,rolebindings", "-n", SYSTEM,
        "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name").stdout.split() == [],
        timeout=60, interval=1, what="nothing of the release left in its namespace")
    cluster_wide = cluster.kubectl(
        "get", "clusterroles,clusterrolebindings,validatingwebhookconfigurations,"
        "mutatingwebhookconfigurations", "-o", "name").stdout.split()
    ours = [n for n in cluster_wide if "atomic" in n]
    assert ours == [], ours
    print(f"\n[e2e] timings: {json.dumps(cluster.timings, indent=1)}")
