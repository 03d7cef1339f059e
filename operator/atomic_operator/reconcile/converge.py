"""Apply one child so that it ends up as rendered, whatever a hand edit did to it.

Server-side apply restores every field the operator owns, except one case: list entries
are matched by their key (a Service port by its number, an env variable or a container by
its name), so an entry whose key was edited by hand is kept beside the rendered one. The
result is a second port named `http`, which the API server refuses, or a stray variable.
When apply is refused (422) or leaves the child different from what was rendered, a merge
patch of the rendered object replaces those lists whole (RFC 7386 replaces arrays) and the
apply is repeated to own the fields again. Fields nobody renders (a Service's clusterIP,
an annotation `kubectl rollout restart` adds) are kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from atomic_operator.drift import diverged
from atomic_operator.k8s import Api, ApiError
from atomic_operator.k8s.kinds import Owner, refusable_kinds
from atomic_operator.k8s.resources import object_path
from atomic_operator.settings import FIELD_MANAGER


async def dry_run(client: Api, children: Iterable[dict[str, Any]], owner: Owner) -> None:
    """Every child the API server may refuse for the user's fields (`ChildKind.refusable`)
    through its own validation, none written; raises the first refusal. The reconcile runs
    it before writing anything, the webhook at apply."""
    refusable = refusable_kinds(owner)
    for child in children:
        if child["kind"] in refusable:
            await client.apply(child, FIELD_MANAGER, dry_run=True)


async def apply_child(client: Api, child: dict[str, Any]) -> dict[str, Any]:
    """The child applied and, if a hand edit re-keyed one of its lists, repaired."""
    try:
        live = await client.apply(child, FIELD_MANAGER)
    except ApiError as err:
        if err.status != 422:
            raise
        return await _replace(client, child, refusal=err)
    if diverged(child, live):
        return await _replace(client, child, refusal=None)
    return live


async def _replace(client: Api, child: dict[str, Any], refusal: ApiError | None
                   ) -> dict[str, Any]:
    try:
        await client.merge_patch(object_path(child), child, FIELD_MANAGER)
    except ApiError as err:
        if refusal is not None and err.status in (404, 422):
            raise refusal from err  # not drift: the API server refuses what we render
        raise
    return await client.apply(child, FIELD_MANAGER)
