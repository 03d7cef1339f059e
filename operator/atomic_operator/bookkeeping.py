"""kopf's record of the last handled spec, kept as a digest instead of a copy.

kopf stores the last handled state of each object to tell a real change from its own
writes. Its default keeps the whole spec in one annotation, and annotations hold at most
256 KiB in total: a larger spec (long prompts, big schemas) made every later update look
like a creation, with growing delays and error logs. The handlers here are level-triggered
(each reconcile reads the whole object, never kopf's diff), so a digest of the same state
tells a change apart just as well, in 80 bytes whatever the spec's size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, cast

import kopf


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """The last handled state as a SHA-256 of what kopf would have stored."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
              ) -> kopf.BodyEssence:
        essence: dict[str, Any] = dict(super().build(body=body, extra_fields=extra_fields))
        metadata = dict(essence.pop("metadata", None) or {})
        # kopf's own per-handler progress lives under the same prefix and changes while
        # it works; it is not part of the object's state.
        annotations = {k: v for k, v in (metadata.pop("annotations", None) or {}).items()
                       if not k.startswith(f"{self.prefix}/")}
        if annotations:
            metadata["annotations"] = annotations
        if metadata:
            essence["metadata"] = metadata
        canonical = json.dumps(essence, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return cast("kopf.BodyEssence", {"digest": digest})
