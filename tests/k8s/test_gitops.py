"""What a GitOps tool sees: no perpetual diff, and a health check that reads real status.

- The examples applied as a user applies them (client-side and server-side), reconciled by
  the operator, then `kubectl diff` against the same files: nothing the server or the
  operator rewrote shows up as drift.
- Argo CD's health check (deploy/argocd/health.lua) runs in a real Lua (lupa) on objects
  read back from the API server in each state the operator reports.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime

from atomic_devcluster.operator_process import OperatorProcess
from tests.k8s.conftest import MISSING_AGENT_GRACE
from tests.support.kube import Kube, eventually
from tests.support.manifests import EXAMPLES, variant

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "deploy" / "argocd" / "health.lua"
USER_FILES = [EXAMPLES / f"{name}.yaml" for name in (
    "openai-credentials", "task-processor", "content-analyzer", "analysis-to-tasks")]


@pytest.fixture
def user_ns(kube: Kube, operator: OperatorProcess) -> Kube:
    return kube


def apply_args(mode: str) -> list[str]:
    return ["--server-side", "--field-manager=gitops-user"] if mode == "server-side" else []


def settle(kube: Kube) -> None:
    kube.run("wait", "--for=condition=Ready", "--timeout=60s",
             "atomicagent/task-processor", "atomicagent/content-analyzer")
    kube.run("wait", "--for=condition=SchemasCompatible", "--timeout=30s",
             "atomicpipeline/analysis-to-tasks")
    # the HPA of content-analyzer and a status write or two may follow Ready: wait until
    # the objects stop changing, so the diff is taken after the operator is done
    def quiet() -> bool:
        before = kube.run("get", "atomicagent,atomicpipeline", "-o",
                          "jsonpath={.items[*].metadata.resourceVersion}")
        time.sleep(1.0)
        after = kube.run("get", "atomicagent,atomicpipeline", "-o",
                         "jsonpath={.items[*].metadata.resourceVersion}")
        return before == after
    eventually(quiet, timeout=20, what="the operator to stop writing")


@pytest.mark.parametrize("mode", ["client-side", "server-side"])
def test_committed_examples_show_no_diff_after_reconcile(user_ns: Kube, mode: str) -> None:
    files = [f"--filename={path}" for path in USER_FILES]
    user_ns.run("apply", *apply_args(mode), *files)
    settle(user_ns)
    proc = user_ns.cp.kubectl(f"--namespace={user_ns.namespace}", "diff",
                              *apply_args(mode), *files, check=False)
    assert proc.returncode == 0, f"perpetual diff ({mode}):\n{proc.stdout}{proc.stderr}"
    assert proc.stdout == ""
    # the live specs hold what was committed (defaults aside), and only the user's
    # field manager owns anything under spec: the operator writes none of it
    user = "gitops-user" if mode == "server-side" else "kubectl-client-side-apply"
    for path in USER_FILES[1:]:
        committed = _yaml(path)
        kind, name = committed["kind"], committed["metadata"]["name"]
        live = json.loads(user_ns.run("get", kind, name, "-o", "json", "--show-managed-fields"))
        assert _contains(live["spec"], committed["spec"]), path.name
        assert _spec_owners(live) == {user}, path.name


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def _contains(live: Any, committed: Any) -> bool:
    if isinstance(committed, dict):
        return isinstance(live, dict) and all(
            k in live and _contains(live[k], v) for k, v in committed.items())
    if isinstance(committed, list):  # list items gain the CRD's defaults too
        return isinstance(live, list) and len(live) == len(committed) and all(
            _contains(a, b) for a, b in zip(live, committed, strict=True))
    if isinstance(committed, int | float) and isinstance(live, int | float):
        return float(live) == float(committed)
    return bool(live == committed)


def _spec_owners(live: dict[str, Any]) -> set[str]:
    return {entry["manager"] for entry in live["metadata"]["managedFields"]
            if entry.get("subresource") != "status" and "f:spec" in (entry.get("fieldsV1") or {})}


# -- Argo CD health check ------------------------------------------------------------


def argo_health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the health script the way Argo CD does: `obj` global, a table returned."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(json.loads(json.dumps(obj)), recursive=True)
    result = lua.execute(HEALTH_LUA.read_text())
    return str(result["status"]), str(result["message"])


def test_health_check_follows_an_agent_through_its_states(user_ns: Kube) -> None:
    created = json.loads(user_ns.run("create", "-o", "json", "-f",
                                     str(EXAMPLES / "task-processor.yaml")))
    assert argo_health(created)[0] == "Progressing"  # no status yet: the operator is next
    missing_secret = user_ns.get("atomicagent", "task-processor")
    missing_secret = eventually(
        lambda: (lambda o: o if argo_health(o)[0] == "Degraded" else None)(
            user_ns.get("atomicagent", "task-processor")),
        timeout=20, what="Degraded for a missing Secret")
    status, message = argo_health(missing_secret)
    assert "MissingSecret" in message, message
    user_ns.run("apply", "-f", str(EXAMPLES / "openai-credentials.yaml"))
    user_ns.run("wait", "--for=condition=Ready", "--timeout=30s", "atomicagent/task-processor")
    status, message = argo_health(user_ns.get("atomicagent", "task-processor"))
    assert (status, message) == ("Healthy", "Available: 1/1 replicas available")
    # a spec change the operator has not observed yet: the same object, one generation on
    ready = user_ns.get("atomicagent", "task-processor")
    ready["metadata"]["generation"] += 1
    assert argo_health(ready)[0] == "Progressing"


def test_health_check_rolling_out_is_progressing(user_ns: Kube) -> None:
    """Pods that cannot be scheduled keep the rollout going: Progressing, not Degraded."""
    user_ns.run("apply", "-f", str(EXAMPLES / "openai-credentials.yaml"))
    unschedulable = variant("task-processor", {"spec": {"resources": {
        "requests": {"cpu": "500", "memory": "128Mi"}}}})
    user_ns.apply(unschedulable)
    obj = eventually(lambda: (lambda o: o if (o.get("status") or {}).get("conditions") else None)(
        user_ns.get("atomicagent", "task-processor")), timeout=20, what="a status")
    status, message = argo_health(obj)
    assert status == "Progressing", message
    assert re.match(r"(RollingOut|Unavailable): .*0 available|Unavailable: 0/1", message), message


def test_health_check_of_pipelines(proc_kube: Kube, operator: OperatorProcess) -> None:
    """On the process node the runner really runs (a process, probed like a kubelet probes
    it), so the pipeline must turn Ready and read Healthy; a broken one reads Degraded."""
    user_ns = proc_kube
    user_ns.run("apply", *(f"--filename={path}" for path in USER_FILES))
    user_ns.run("wait", "--for=condition=SchemasCompatible", "--timeout=30s",
                "atomicpipeline/analysis-to-tasks")
    user_ns.run("wait", "--for=condition=Ready", "--timeout=90s",
                "atomicpipeline/analysis-to-tasks")
    status, message = argo_health(user_ns.get("atomicpipeline", "analysis-to-tasks"))
    assert status == "Healthy", message
    broken = variant("analysis-to-tasks", {"metadata": {"name": "broken"}, "spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"from": "input.content"}, "analysis_type": {"value": 3}}}],
        "output": {"from": "steps.analyze.output"}}})
    user_ns.apply(broken)
    user_ns.run("wait", "--for=condition=SchemasCompatible=False", "--timeout=30s",
                "atomicpipeline/broken")
    status, message = argo_health(user_ns.get("atomicpipeline", "broken"))
    assert status == "Degraded", message


def test_docs_carry_the_tested_health_check() -> None:
    doc = (ROOT / "docs" / "gitops.md").read_text()
    script = HEALTH_LUA.read_text()
    indented = "".join(f"    {line}" if line.strip() else line
                       for line in script.splitlines(keepends=True))
    for kind in ("AtomicAgent", "AtomicPipeline"):
        key = f"resource.customizations.health.atomicagents.io_{kind}: |\n"
        assert key + indented in doc, kind


# -- kstatus (what Flux's health checks and `kubectl wait`-style tools compute) ------------

_TYPE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                   r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def kstatus(obj: dict[str, Any]) -> str:
    """sigs.k8s.io/cli-utils/pkg/kstatus's generic rules for a custom resource."""
    meta, status = obj["metadata"], obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    observed = status.get("observedGeneration")
    if observed is not None and observed != meta.get("generation"):
        return "InProgress"
    for condition in status.get("conditions") or []:
        if condition["type"] == "Reconciling" and condition["status"] == "True":
            return "InProgress"
        if condition["type"] == "Stalled" and condition["status"] == "True":
            return "Failed"
    return "Current"


def check_condition_shapes(obj: dict[str, Any]) -> None:
    """metav1.Condition, field by field, as kstatus and `kubectl wait` read it."""
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    types = [c["type"] for c in status["conditions"]]
    assert len(types) == len(set(types)), types
    for condition in status["conditions"]:
        assert _TYPE.match(condition["type"]) and len(condition["type"]) <= 316, condition
        assert condition["status"] in ("True", "False", "Unknown"), condition
        assert _REASON.match(condition["reason"]) and len(condition["reason"]) <= 1024
        assert isinstance(condition["message"], str) and len(condition["message"]) <= 32768
        assert _TIME.match(condition["lastTransitionTime"]), condition
        assert condition["observedGeneration"] == obj["metadata"]["generation"], condition


def conditions_of(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def test_kstatus_reads_both_kinds_as_the_operator_means(user_ns: Kube) -> None:
    """Current only when Ready; InProgress while rolling out; Failed on a problem waiting
    cannot fix: for agents and pipelines, from objects read back from the API server."""
    def settled(kind: str, name: str, want: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            obj = user_ns.get(kind, name)
            return obj if (obj.get("status") or {}).get("conditions") and \
                kstatus(obj) == want else None
        return eventually(probe, timeout=30, what=f"{kind}/{name} {want} (kstatus)")

    user_ns.apply(variant("task-processor", {"metadata": {"name": "no-secret"}}))
    failed = settled("atomicagent", "no-secret", "Failed")
    assert conditions_of(failed)["Ready"] == "False"
    user_ns.run("apply", *(f"--filename={path}" for path in USER_FILES))
    ready = settled("atomicagent", "task-processor", "Current")
    assert conditions_of(ready)["Ready"] == "True"
    user_ns.apply(variant("task-processor", {"metadata": {"name": "rolling"}, "spec": {
        "resources": {"requests": {"cpu": "500", "memory": "128Mi"}}}}))
    rolling = settled("atomicagent", "rolling", "InProgress")
    assert conditions_of(rolling)["Ready"] == "False"
    user_ns.run("wait", "--for=condition=SchemasCompatible", "--timeout=30s",
                "atomicpipeline/analysis-to-tasks")
    pipeline = user_ns.get("atomicpipeline", "analysis-to-tasks")
    # Current exactly when Ready (a pipeline without its runner is not Current)
    assert (kstatus(pipeline) == "Current") == (conditions_of(pipeline)["Ready"] == "True")
    broken = variant("analysis-to-tasks", {"metadata": {"name": "broken"}, "spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "content-analyzer"},
         "input": {"content": {"from": "input.content"}, "analysis_type": {"value": 3}}}],
        "output": {"from": "steps.analyze.output"}}})
    user_ns.apply(broken)
    settled("atomicpipeline", "broken", "Failed")
    # issue 22 #19: an agent that never arrives fails the pipeline after the grace, instead
    # of InProgress until Flux's own timeout
    orphan = variant("analysis-to-tasks", {"metadata": {"name": "orphan"}, "spec": {"steps": [
        {"name": "analyze", "agentRef": {"name": "never-created"},
         "input": {"content": {"from": "input.content"}}}],
        "output": {"from": "steps.analyze.output"}}})
    started = time.monotonic()
    user_ns.apply(orphan)
    settled("atomicpipeline", "orphan", "InProgress")
    stalled = eventually(lambda: (o := user_ns.get("atomicpipeline", "orphan"))
                         and kstatus(o) == "Failed" and o,
                         timeout=MISSING_AGENT_GRACE + 15, what="orphan Failed (kstatus)")
    assert time.monotonic() - started >= MISSING_AGENT_GRACE - 1
    stall = next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")
    assert stall["reason"] == "MissingAgent" and "never-created" in stall["message"], stall
    for kind, name in (("atomicagent", "no-secret"), ("atomicagent", "task-processor"),
                       ("atomicagent", "rolling"), ("atomicpipeline", "analysis-to-tasks"),
                       ("atomicpipeline", "broken"), ("atomicpipeline", "orphan")):
        check_condition_shapes(user_ns.get(kind, name))
