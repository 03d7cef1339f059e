"""What counts as drift of a child (the rendered fields, entry for entry), and which API
errors end a reconcile for good rather than being retried."""

from __future__ import annotations

import json

from atomic_operator.drift import OwnedFields, diverged, edited_by_others
from atomic_operator.k8s import ApiError, gone_with_namespace
from atomic_operator.reconcile.converge import refused_for_its_content

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


def test_which_api_errors_are_final() -> None:
    assert refused_for_its_content(ApiError(422, "Invalid", "spec.template...: Unsupported"))
    assert refused_for_its_content(ApiError(
        500, "InternalError", "failed to create typed patch object (/v1, Kind=Pod): "
        ".spec.containers[name=\"agent\"].resources.requests.cpu: quantities must match"))
    assert not refused_for_its_content(ApiError(500, "InternalError", "etcd leader changed"))
    assert not refused_for_its_content(ApiError(409, "Conflict", "the object was modified"))
    assert gone_with_namespace(ApiError(403, "Forbidden", 'deployments.apps "a" is forbidden: '
                                        "unable to create new content in namespace t because "
                                        "it is being terminated"))
    assert gone_with_namespace(ApiError(404, "NotFound", 'namespaces "t" not found'))
    assert not gone_with_namespace(ApiError(404, "NotFound", 'deployments.apps "a" not found'))
    assert not gone_with_namespace(ApiError(403, "Forbidden", "cannot patch deployments"))


def _with_fields(fields: object, manager: str = "atomic-operator") -> dict[str, object]:
    return {"kind": "Deployment", "metadata": {"name": "a", "namespace": "ns", "managedFields": [
        {"manager": manager, "operation": "Apply", "fieldsV1": fields},
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
         "fieldsV1": {"f:status": {}}}]}}


ENV = {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"agent"}': {
    "f:env": {'k:{"name":"A"}': {".": {}, "f:value": {}},
              'k:{"name":"B"}': {".": {}, "f:value": {}}}}}}}}}


def test_a_field_taken_away_is_seen_though_the_editor_left_no_entry() -> None:
    """Issue 22 #15: a JSON patch removing an env var leaves no managedFields entry of the
    editor (it owns nothing), so `edited_by_others` misses it; our own entry shrinks."""
    owned = OwnedFields()
    applied = _with_fields(ENV)
    assert not owned.lost(applied)  # unknown until recorded: resume's job
    owned.record(applied)
    assert not owned.lost(_with_fields(ENV))
    removed = json.loads(json.dumps(ENV).replace(', "k:{\\"name\\":\\"B\\"}": {".": {}, '
                                                 '"f:value": {}}', ""))
    assert removed != ENV
    edited = _with_fields(removed)
    assert not edited_by_others(edited)
    assert owned.lost(edited)
    assert owned.lost(_with_fields(ENV, manager="someone-else"))  # ours gone entirely
    owned.forget(applied)
    assert not owned.lost(edited) and len(owned) == 0
