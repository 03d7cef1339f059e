"""The process node's pure rules: addresses, host names, env expansion, images, status."""

from __future__ import annotations

import sys

import pytest

from atomic_devcluster.procnode.images import ImageMap, UnknownImageError
from atomic_devcluster.procnode.launch import expand
from atomic_devcluster.procnode.network import Addresses, twin
from atomic_devcluster.procnode.proxy import service_of
from atomic_devcluster.procnode.status import ContainerView, pod_status
from atomic_operator.settings import DEFAULT_RUNTIME_IMAGE


def test_pod_ips_listen_on_their_loopback_twin_and_are_never_handed_out_twice() -> None:
    assert twin("10.244.3.7") == "127.244.3.7"
    assert twin("10.0.0.7") == "10.0.0.7"  # not this node's: unchanged
    addresses = Addresses()
    addresses.take("10.244.0.3")
    assert [addresses.allocate() for _ in range(2)] == ["10.244.0.2", "10.244.0.4"]
    addresses.release("10.244.0.2")
    assert addresses.allocate() == "10.244.0.2"


@pytest.mark.parametrize(("host", "service"), [
    ("echo.team-a.svc.cluster.local", ("team-a", "echo")),
    ("echo.team-a.svc", ("team-a", "echo")),
    ("ECHO.team-a.svc.cluster.local.", ("team-a", "echo")),
    ("api.openai.com", None),
    ("echo.team-a", None),
])
def test_service_host_names(host: str, service: tuple[str, str] | None) -> None:
    assert service_of(host) == service


def test_env_expansion_follows_kubernetes() -> None:
    env = {"A": "1"}
    assert expand("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


def test_images_map_to_commands_and_unknown_ones_are_named() -> None:
    images = ImageMap.with_runtime({"my/tool:1": ["{python}", "-m", "tool"]})
    argv, env = images.argv({"image": DEFAULT_RUNTIME_IMAGE, "args": ["--x"]})
    assert argv == [sys.executable, "-m", "atomic_runtime", "--x"]
    assert env["ATOMIC_AGENT_PORT"] == "8080"
    argv, _ = images.argv({"image": "my/tool:1", "command": ["python3", "-m", "other"]})
    assert argv == [sys.executable, "-m", "other"]
    with pytest.raises(UnknownImageError, match="cannot run image 'nginx:1'"):
        images.argv({"image": "nginx:1"})


def test_ready_follows_the_probe_and_transition_times_survive_rewrites() -> None:
    view = ContainerView(name="agent", image="img", state="running", reason="",
                         started_at="t0", pid=42)
    pod: dict[str, object] = {"status": {}}
    first = pod_status(pod, view, "10.244.0.2", "127.0.0.1", "Running")
    ready = {c["type"]: c for c in first["conditions"]}["Ready"]
    assert ready["status"] == "False" and first["containerStatuses"][0]["started"]
    view.ready = True
    second = pod_status({"status": first}, view, "10.244.0.2", "127.0.0.1", "Running")
    assert {c["type"]: c["status"] for c in second["conditions"]}["Ready"] == "True"
    view.ended(3)
    assert view.last_terminated is not None and view.last_terminated["exitCode"] == 3
    assert not view.ready
