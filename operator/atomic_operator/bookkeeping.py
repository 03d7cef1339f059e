"""kopf's record of the last handled state, read from the status the reconcile writes.

kopf tells a real change from its own writes by comparing an object with the last state it
handled. By default it keeps that state in an annotation, which costs one more write of the
custom resource after every handled change, and keeps a copy of the whole spec (annotations
hold at most 256 KiB: a larger spec was handled as a creation forever).

The handlers here are level-triggered: each reconcile reads the whole object, never kopf's
diff, and ends by writing `status.observedGeneration`, the Kubernetes record of the spec a
controller has acted on. That is the last handled state already. So the state compared is
the generation alone: the object's `metadata.generation` against the `observedGeneration`
its status reports, and kopf stores nothing.

- No observedGeneration yet: kopf sees a creation (a new object; the status subresource is
  dropped on create, so a new object never carries one).
- The two differ: an update (the spec changed, or the operator was down when it did).
- Equal: nothing to do, as for the reconcile's own status writes; on start, a resume.

kopf also brands an object it first records progress on with a `<prefix>/kopf-managed`
annotation, so that other kopf-based operators ignore its annotations: one more write of
every new object, for the rare object a second kopf operator watches. The progress storage
the handlers use (`compat.kopf.UnbrandedProgressStorage`) records progress (a retry's count
and delay, in annotations under `atomicagents.io/`) exactly as kopf's does, without the
brand.

Metadata changes (labels, annotations) no longer count as changes: nothing the operator
renders reads the owner's labels or annotations. Writing an AtomicAgent costs the API server
about 5 ms of CPU (an unstructured object decoded, patched, validated, its managed fields
updated and re-encoded), the same for an annotation as for a status patch, against under
1 ms for a ConfigMap apply; kopf's write was one of a new agent's four or five
custom-resource writes (bench/operator_scale.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import kopf


class ObservedGenerationDiffBase(kopf.DiffBaseStorage):
    """The last handled state is the generation the object's status says was observed."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
              ) -> kopf.BodyEssence:
        return cast("kopf.BodyEssence", {"generation": body.metadata.get("generation")})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        observed = (body.get("status") or {}).get("observedGeneration")
        if observed is None:
            return None
        return cast("kopf.BodyEssence", {"generation": observed})

    def store(self, *, body: kopf.Body, patch: kopf.Patch,
              essence: kopf.BodyEssence) -> None:
        """Nothing: the reconcile's status write is the record."""
