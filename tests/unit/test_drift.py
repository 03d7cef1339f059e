"""What counts as drift of a child: the rendered fields, entry for entry."""

from __future__ import annotations

from atomic_operator.drift import diverged

SERVICE = {"spec": {"type": "ClusterIP", "selector": {"app": "a"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def test_server_defaults_are_not_drift() -> None:
    live = {"metadata": {"uid": "u"}, "spec": {
        "type": "ClusterIP", "clusterIP": "10.0.0.1", "selector": {"app": "a"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}
    assert not diverged(SERVICE, live)


def test_a_second_port_entry_beside_ours_is_drift() -> None:
    live = {"spec": {**SERVICE["spec"], "ports": [
        {"name": "http", "port": 80, "targetPort": "http"},
        {"name": "http", "port": 8080, "targetPort": "http"}]}}
    assert diverged(SERVICE, live)


def test_changed_values_and_missing_keys_are_drift() -> None:
    assert diverged(SERVICE, {"spec": {**SERVICE["spec"], "type": "NodePort"}})
    assert diverged(SERVICE, {"spec": {"type": "ClusterIP", "selector": {"app": "a"}}})
    assert diverged({"a": True}, {"a": "true"})


def test_quantities_written_as_numbers_match_their_text() -> None:
    assert not diverged({"cpu": 1}, {"cpu": "1"})
