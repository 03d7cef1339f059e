"""The process node's pure rules: addresses, host names, env expansion, images, status."""

from __future__ import annotations

import ipaddress
import sys

import pytest

from atomic_devcluster.procnode.images import ImageMap, UnknownImageError
from atomic_devcluster.procnode.launch import expand
from atomic_devcluster.procnode.network import Addresses, claim_cidr, twin
from atomic_devcluster.procnode.node import node_status, status_is_stale
from atomic_devcluster.procnode.proxy import service_of
from atomic_devcluster.procnode.status import ContainerView, pod_status, status_differs
from atomic_operator.settings import DEFAULT_RUNTIME_IMAGE


def test_pod_ips_listen_on_their_loopback_twin_and_are_never_handed_out_twice() -> None:
    assert twin("10.200.3.7") == "127.200.3.7"
    assert twin("10.0.0.7") == "10.0.0.7"  # kwok's pods: not a process node's
    addresses = Addresses(ipaddress.IPv4Network("10.200.0.0/16"))
    addresses.take("10.200.0.3")
    assert [addresses.allocate() for _ in range(2)] == ["10.200.0.2", "10.200.0.4"]
    addresses.release("10.200.0.2")
    assert addresses.allocate() == "10.200.0.2"
    assert "10.200.9.9" in addresses and "10.201.0.2" not in addresses


def test_two_node_agents_never_share_a_pod_cidr() -> None:
    first, first_lock = claim_cidr()
    second, second_lock = claim_cidr()
    try:
        assert first != second and not first.overlaps(second)
        with pytest.raises(RuntimeError, match="another process node holds it"):
            claim_cidr(str(first))
    finally:
        first_lock.close()
        second_lock.close()
    again, lock = claim_cidr(str(first))  # released with its holder: a restart gets it back
    lock.close()
    assert again == first


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


def test_a_status_someone_else_changed_is_told_apart_from_a_mere_rewrite() -> None:
    view = ContainerView(name="agent", image="img", state="running", reason="",
                         started_at="t0", pid=42, ready=True)
    written = pod_status({"status": {}}, view, "10.244.0.2", "127.0.0.1", "Running")
    again = pod_status({"status": written}, view, "10.244.0.2", "127.0.0.1", "Running")
    assert not status_differs(written, again)  # timestamps alone are no difference
    # The node lifecycle controller's MarkPodsNotReady: Ready False, the rest untouched.
    marked = dict(written, conditions=[dict(c, status="False") if c["type"] == "Ready" else c
                                       for c in written["conditions"]])
    assert status_differs(marked, again)
    assert status_differs(None, again)  # a write lost while the API server was away


def test_node_status_is_stale_until_the_node_posts_it_and_keeps_transition_times() -> None:
    assert status_is_stale(None)
    posted = node_status(4, "127.0.0.1")
    assert not status_is_stale({"status": posted})
    lost = [dict(c, status="Unknown", reason="NodeStatusUnknown") for c in posted["conditions"]]
    assert status_is_stale({"status": {"conditions": lost}})
    ready = {c["type"]: c for c in posted["conditions"]}["Ready"]
    old = [dict(c, lastTransitionTime="2020-01-01T00:00:00Z") for c in posted["conditions"]]
    kept = {c["type"]: c for c in node_status(4, "127.0.0.1", old)["conditions"]}
    assert kept["Ready"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    back = {c["type"]: c for c in node_status(4, "127.0.0.1", lost)["conditions"]}
    assert back["Ready"]["status"] == "True"
    assert back["Ready"]["lastTransitionTime"] >= ready["lastTransitionTime"]
