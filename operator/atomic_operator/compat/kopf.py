"""What the operator relies on in kopf beyond its documented API.

- kopf's log lines for a handler's outcome: `Handler 'x' succeeded.` and
  `Webhook 'x' failed permanently: ...` (`kopf._core.actions.execution`). The operator
  drops the first (one line per child status change) and lowers the second to info (a
  manifest the webhook refused is the user's mistake, already told by kubectl); both
  filters match kopf's wording.
- `AnnotationsProgressStorage.store` writes the progress record into annotations named by
  `make_keys`, plus a `kopf-managed` brand on the object. `UnbrandedProgressStorage`
  writes the same record without the brand (one write of every new object saved), through
  the storage's `verbose` and `make_keys`.

kopf is pinned to the tested minor in pyproject.toml; the contract tests compare these
with kopf's own behaviour.
"""

from __future__ import annotations

import json
import logging

import kopf

SUCCEEDED = "' succeeded."
FAILED_PERMANENTLY = "' failed permanently: "
HANDLER_PREFIXES = ("Handler '", "Webhook '")


class QuietSuccesses(logging.Filter):
    """Drops kopf's line for every successful handler call: for watch-event handlers one
    per child status change, for the webhook one per admission review. Our handlers log
    what they did."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (record.levelno == logging.INFO and message.startswith(HANDLER_PREFIXES)
                    and message.endswith(SUCCEEDED))


class RefusalsAreInfo(logging.Filter):
    """kopf logs a manifest the webhook refuses as an error of the operator; it is the
    user's mistake, already told to them by kubectl, so it is logged at info."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if (record.levelno == logging.ERROR and message.startswith("Webhook '")
                and FAILED_PERMANENTLY in message):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class UnbrandedProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's annotations progress storage, minus the `kopf-managed` marker write."""

    def store(self, *, key: kopf.HandlerId, record: kopf.ProgressRecord, body: kopf.Body,
              patch: kopf.Patch) -> None:
        kept = {k: v for k, v in record.items() if self.verbose or v is not None}
        encoded = json.dumps(kept, separators=(",", ":"))
        annotations = patch.setdefault("metadata", {}).setdefault("annotations", {})
        for full_key in self.make_keys(key, body=body):
            annotations[full_key] = encoded
