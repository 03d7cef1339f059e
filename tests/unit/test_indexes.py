"""What the kopf index functions keep (handlers/indexes.py)."""

from __future__ import annotations

import kopf

from atomic_operator.handlers.indexes import agents


async def test_the_agents_index_keeps_its_own_copy() -> None:
    """kopf's body is a view of the event; the index copies it (through orjson since that
    is cheaper than deepcopy), and the copy shares nothing with the event."""
    raw = {"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"l": [1, {"b": True}]}}
    copied = await agents(namespace="ns", name="a", body=kopf.Body(raw))
    assert copied == {("ns", "a"): raw}
    raw["metadata"]["labels"]["x"] = "2"
    raw["spec"]["l"][1]["b"] = False
    assert copied[("ns", "a")]["metadata"]["labels"] == {"x": "1"}
    assert copied[("ns", "a")]["spec"]["l"] == [1, {"b": True}]
