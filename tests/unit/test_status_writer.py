"""The one status writer: only what changed, once, with its events; and its memory of what
it wrote, which must never serve a status older than the API server's."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import REGISTRY

from atomic_operator.api import AtomicAgentStatus
from atomic_operator.k8s import ApiError
from atomic_operator.reconcile.status_writer import Event, StatusWriter, status_patch
from tests.support.memory_api import MemoryApi

PATH = "/apis/atomicagents.io/v1alpha1/namespaces/ns/atomicagents/a"


def _cond(status: str, reason: str, time: str) -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": "",
            "lastTransitionTime": time}


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, body: Mapping[str, Any], event: Event) -> None:
        self.events.append(event)


def _setup(status: dict[str, Any] | None = None) -> tuple[MemoryApi, StatusWriter, Recorder,
                                                          dict[str, Any]]:
    api = MemoryApi()
    body = api.put({"apiVersion": "atomicagents.io/v1alpha1", "kind": "AtomicAgent",
                    "metadata": {"name": "a", "namespace": "ns"}, "spec": {},
                    **({"status": status} if status else {})})
    recorder = Recorder()
    return api, StatusWriter(api, recorder), recorder, body


def _wanted(**fields: Any) -> AtomicAgentStatus:
    return AtomicAgentStatus.model_validate(fields)


def _writes() -> float:
    return REGISTRY.get_sample_value("atomic_operator_status_writes_total",
                                     {"kind": "AtomicAgent"}) or 0.0


def test_patch_holds_only_what_changed_and_ignores_transition_times() -> None:
    current = {"observedGeneration": 1, "configHash": "h",
               "conditions": [_cond("True", "Available", "2026-01-01T00:00:00Z")]}
    same = {**current, "conditions": [_cond("True", "Available", "2026-01-02T00:00:00Z")]}
    assert status_patch(current, same) is None
    moved = {**current, "observedGeneration": 2}
    assert status_patch(current, moved) == {"observedGeneration": 2}
    flipped = {**current, "conditions": [_cond("False", "RollingOut", "2026-01-02T00:00:00Z")]}
    assert status_patch(current, flipped) == {"conditions": flipped["conditions"]}


async def test_unchanged_status_is_not_written_and_says_nothing() -> None:
    api, writer, recorder, body = _setup({"observedGeneration": 1, "configHash": "h"})
    before = _writes()
    written = await writer.write(body, _wanted(observedGeneration=1, configHash="h"),
                                 [("Normal", "Created", "x")])
    assert written is None and api.writes() == [] and recorder.events == []
    assert _writes() == before


async def test_changed_status_is_one_patch_with_its_events() -> None:
    api, writer, recorder, body = _setup({"observedGeneration": 1, "configHash": "h"})
    before = _writes()
    written = await writer.write(body, _wanted(observedGeneration=2, configHash="h"),
                                 [("Normal", "RollingOut", "x")])
    assert written == {"observedGeneration": 2}
    assert [(c.method, c.path, c.body) for c in api.writes()] == [
        ("merge_patch", PATH + "/status", {"status": {"observedGeneration": 2}})]
    assert recorder.events == [("Normal", "RollingOut", "x")]
    assert _writes() == before + 1


async def test_gone_object_is_not_an_error() -> None:
    api, writer, recorder, body = _setup()
    del api.objects[PATH]
    assert await writer.write(body, _wanted(observedGeneration=1)) is None
    assert recorder.events == []


async def test_one_conflict_is_retried_two_are_raised() -> None:
    api, writer, _, body = _setup()
    api.fail[("merge_patch", PATH + "/status")] = 409
    assert await writer.write(body, _wanted(observedGeneration=1)) == {"observedGeneration": 1}
    assert len(api.writes("merge_patch")) == 2
    api, writer, recorder, body = _setup()
    api.fail[("merge_patch", PATH + "/status")] = 409
    original = api.merge_patch

    async def conflicting_again(path: str, patch: dict[str, Any], manager: str
                                ) -> dict[str, Any]:
        api.fail[("merge_patch", path)] = 409
        return await original(path, patch, manager)

    api.merge_patch = conflicting_again  # type: ignore[method-assign]
    with pytest.raises(ApiError) as raised:
        await writer.write(body, _wanted(observedGeneration=1), [("Normal", "X", "y")])
    assert raised.value.status == 409 and recorder.events == []


# The memory of written statuses: kopf's copies lag, ours must never be older.

async def test_memory_serves_our_write_while_the_watch_lags() -> None:
    _, writer, _, body = _setup()
    await writer.write(body, _wanted(observedGeneration=1, configHash="h"))
    lagging = writer.latest(body)  # the same (old) body, as kopf's index still has it
    assert lagging["status"]["configHash"] == "h"
    # Writing again from the remembered status changes nothing.
    assert await writer.write(lagging, _wanted(observedGeneration=1, configHash="h")) is None


async def test_memory_gives_way_once_the_watch_delivers_our_write() -> None:
    api, writer, _, body = _setup()
    await writer.write(body, _wanted(observedGeneration=1, configHash="h"))
    caught_up = api.get(PATH)
    assert writer.latest(caught_up) is caught_up
    # From then on the body is newer than our memory, whatever happens to it.
    caught_up["status"] = {"observedGeneration": 1, "configHash": "someone-else"}
    assert writer.latest(caught_up)["status"]["configHash"] == "someone-else"


async def test_memory_is_not_served_to_a_recreated_object() -> None:
    api, writer, _, body = _setup()
    await writer.write(body, _wanted(observedGeneration=1, configHash="h"))
    del api.objects[PATH]
    recreated = api.put({**body, "metadata": {"name": "a", "namespace": "ns"}, "status": {}})
    assert recreated["metadata"]["uid"] != body["metadata"]["uid"]
    assert writer.latest(recreated)["status"] == {}


async def test_memory_is_dropped_when_a_write_fails() -> None:
    api, writer, _, body = _setup()
    await writer.write(body, _wanted(observedGeneration=1, configHash="h"))
    api.fail[("merge_patch", PATH + "/status")] = 500
    with pytest.raises(ApiError):
        await writer.write(body, _wanted(observedGeneration=2, configHash="h2"))
    # The server may or may not have stored it: the body is all we know.
    assert writer.latest(body) is body


async def test_memory_is_dropped_with_the_object() -> None:
    _, writer, _, body = _setup()
    await writer.write(body, _wanted(observedGeneration=1))
    writer.forget(body)
    assert writer.latest(body) is body


async def test_writes_of_one_object_are_serialized_so_memory_holds_the_last() -> None:
    api, writer, _, body = _setup()
    release = asyncio.Event()
    original = api.merge_patch
    entered: list[dict[str, Any]] = []

    async def slow_first(path: str, patch: dict[str, Any], manager: str) -> dict[str, Any]:
        entered.append(patch)
        if len(entered) == 1:
            await release.wait()  # the server takes its time with the first write
        return await original(path, patch, manager)

    api.merge_patch = slow_first  # type: ignore[method-assign]
    first = asyncio.create_task(writer.write(body, _wanted(observedGeneration=1)))
    second = asyncio.create_task(writer.write(body, _wanted(observedGeneration=2)))
    await asyncio.sleep(0.01)
    assert len(entered) == 1  # the second waits for the first, which waits for the server
    release.set()
    await asyncio.gather(first, second)
    assert [c.body["status"]["observedGeneration"] for c in api.writes()] == [1, 2]
    assert writer.latest(body)["status"]["observedGeneration"] == 2
