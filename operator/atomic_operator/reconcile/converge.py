"""Apply one child so that it ends up as rendered, whatever a hand edit did to it.

Server-side apply restores every field the operator owns, except one case: list entries
are matched by their key (a Service port by its number, an env variable or a container by
its name), so an entry whose key was edited by hand is kept beside the rendered one. The
result is a second port named `http`, which the API server refuses, or a stray variable.
When apply is refused (422) or leaves the child different from what was rendered, a merge
patch of the rendered object replaces those lists whole (RFC 7386 replaces arrays) and the
apply is repeated to own the fields again. Fields nobody renders (a Service's clusterIP,
an annotation `kubectl rollout restart` adds) are kept. When even that is refused although
the rendered child is valid on its own (a field someone else added, such as a cpu limit
under our cpu request, which neither apply nor a merge patch removes), the child is
deleted and applied afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from atomic_operator.drift import OwnedFields, diverged
from atomic_operator.k8s import Api, ApiError
from atomic_operator.k8s.kinds import DEPLOYMENT, Owner, refusable_kinds
from atomic_operator.k8s.resources import object_path
from atomic_operator.problems import SpecProblem
from atomic_operator.reconcile.status_writer import Event
from atomic_operator.settings import FIELD_MANAGER


async def dry_run(client: Api, children: Iterable[dict[str, Any]], owner: Owner) -> None:
    """Every child the API server may refuse for the user's fields (`ChildKind.refusable`)
    through its own validation, none written; raises the first refusal. The reconcile runs
    it before writing anything, the webhook at apply."""
    refusable = refusable_kinds(owner)
    for child in children:
        if child["kind"] in refusable:
            await client.apply(child, FIELD_MANAGER, dry_run=True)


def refused_for_its_content(err: ApiError) -> bool:
    """The API server refused what was sent, so sending it again cannot help: invalid (400,
    422), or a value server-side apply cannot even type (a 500 whose message says so)."""
    return err.status in (400, 422) or (
        err.status == 500 and err.message.startswith("failed to create typed patch object"))


def rejected(err: ApiError, child: Mapping[str, Any] | None = None) -> SpecProblem:
    """A refusal of a rendered child, as the owner's problem (the message names the child's
    field, e.g. spec.template.spec.affinity...). Refused for a new spec, the spec is to
    blame; refused while only repairing (the spec did not change), the child is named."""
    if child is None:
        return SpecProblem("spec", "RejectedByApiServer", err.message)
    return SpecProblem(f"{child['kind']} {child['metadata']['name']}", "RejectedByApiServer",
                       err.message)


@dataclass
class Converged:
    """What `apply_children` did: the kinds applied, the live Deployment, the children the
    API server refused while being repaired, and the repairs to tell as events."""

    applied: list[str] = field(default_factory=list)
    deployment: dict[str, Any] = field(default_factory=dict)
    refusals: list[SpecProblem] = field(default_factory=list)
    repairs: list[Event] = field(default_factory=list)


async def apply_children(client: Api, children: Iterable[dict[str, Any]],
                         owned: OwnedFields | None, *, repairing: bool) -> Converged:
    """Apply each child in order (`apply_child`, drift repair included), for every owner
    kind. `repairing` (the spec did not change): a child the API server refuses is noted and
    the others are still repaired; otherwise the first refusal is raised, the spec's."""
    done = Converged()
    for child in children:
        try:
            live = await apply_child(client, child, owned, done.repairs)
        except ApiError as err:
            if not repairing or not refused_for_its_content(err):
                raise
            done.refusals.append(rejected(err, child))
            continue
        done.applied.append(child["kind"])
        if child["kind"] == DEPLOYMENT.kind:
            done.deployment = live
    return done


async def apply_child(client: Api, child: dict[str, Any], owned: OwnedFields | None = None,
                      notes: list[Event] | None = None) -> dict[str, Any]:
    """The child applied and, if a hand edit re-keyed one of its lists or made the apply
    refused, repaired. `owned` remembers what the apply owns (`drift.OwnedFields`); a repair
    that replaced the child is told in `notes` as a Warning event naming it."""
    try:
        live = await client.apply(child, FIELD_MANAGER)
    except ApiError as err:
        if err.status != 422:
            raise
        live = await _replace(client, child, refusal=err, notes=notes)
    else:
        if diverged(child, live):
            live = await _replace(client, child, refusal=None, notes=notes)
    if owned is not None:
        owned.record(live)
    return live


def child_name(child: dict[str, Any]) -> str:
    return f"{child['kind']} {child['metadata']['name']}"


async def _replace(client: Api, child: dict[str, Any], refusal: ApiError | None,
                   notes: list[Event] | None) -> dict[str, Any]:
    try:
        await client.merge_patch(object_path(child), child, FIELD_MANAGER)
    except ApiError as err:
        if refusal is None or err.status not in (404, 422):
            raise
        if err.status == 404 or not await accepted_alone(client, child):
            raise refusal from err  # not drift: the API server refuses what we render
        # What we render is valid on its own, so a field someone else set on the live
        # object (owned by them, so apply keeps it) makes it invalid, e.g. a cpu limit
        # under our cpu request. Apply cannot remove another manager's field: the child
        # is replaced by what we render.
        await client.delete(object_path(child))
        if notes is not None:
            notes.append(("Warning", "ChildReplaced",
                          f"{child_name(child)}: replaced, because a hand edit made the "
                          f"operator's apply refused: {refusal.message}"))
    return await client.apply(child, FIELD_MANAGER)


async def accepted_alone(client: Api, child: dict[str, Any]) -> bool:
    """Whether the API server accepts the rendered child on its own (a dry-run creation
    under a generated name, so neither the live object nor any other is involved)."""
    meta = {k: v for k, v in child["metadata"].items() if k != "name"}
    probe = {**child, "metadata": {**meta, "generateName": child["metadata"]["name"][:57]}}
    try:
        await client.create(probe, FIELD_MANAGER, dry_run=True)
    except ApiError as err:
        if err.status in (400, 422):
            return False
        raise
    return True
