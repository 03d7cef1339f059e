"""Fold repeated warnings and errors into one line per distinct message per interval.

During an API server outage every watch stream, every retried reconcile and kopf's own
retries log the same few errors again and again (about 94 lines a minute measured, issue
22 #21), burying everything else. The first occurrence of a message passes at once;
repeats are counted, not written, and each interval in which there were some ends with one
line saying how many. Messages that differ only in numbers (attempt counts, delays,
addresses) count as the same message. Info and debug lines are never folded.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

NUMBERS = re.compile(r"\d+(\.\d+)?")

Key = tuple[str, int, str]


@dataclass
class _Seen:
    since: float
    repeats: int
    last: logging.LogRecord


class FoldRepeats(logging.Filter):
    """A filter for a handler: install it with `install`, which also starts the flusher."""

    def __init__(self, handler: logging.Handler, interval: float = 60.0,
                 level: int = logging.WARNING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.handler = handler
        self.interval = interval
        self.level = level
        self.clock = clock
        self._seen: dict[Key, _Seen] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(record: logging.LogRecord) -> Key:
        return record.name, record.levelno, NUMBERS.sub("#", record.getMessage())

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level or getattr(record, "folded", False):
            return True
        now = self.clock()
        self.flush(now)
        key = self.key(record)
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = _Seen(now, 0, record)
                return True
            seen.repeats += 1
            seen.last = record
            return False

    def flush(self, now: float | None = None) -> None:
        """Write the count of every message whose interval has ended (all with `now`
        None: at exit). A message repeated in that interval starts another, so a lasting
        outage writes one line per message per interval; one not repeated is forgotten,
        so its next occurrence is written at once."""
        due: list[_Seen] = []
        with self._lock:
            for key, seen in list(self._seen.items()):
                if now is not None and now - seen.since < self.interval:
                    continue
                if seen.repeats and now is not None:
                    due.append(_Seen(seen.since, seen.repeats, seen.last))
                    seen.since, seen.repeats = now, 0
                else:
                    del self._seen[key]
                    if seen.repeats:
                        due.append(seen)
        for seen in due:
            summary = copy.copy(seen.last)
            summary.msg = (f"{seen.last.getMessage()} (repeated {seen.repeats} more "
                           f"{'time' if seen.repeats == 1 else 'times'} in "
                           f"{self.interval:g} s)")
            summary.args = None
            summary.folded = True
            self.handler.handle(summary)


def install(interval: float) -> list[FoldRepeats]:
    """Fold repeats on every handler of the root logger (where kopf's formatter writes);
    a daemon thread writes the counts when an interval ends without a further repeat."""
    folds: list[FoldRepeats] = []
    if interval <= 0:
        return folds  # folding disabled
    for handler in logging.getLogger().handlers:
        fold = FoldRepeats(handler, interval)
        handler.addFilter(fold)
        folds.append(fold)
    if folds:
        def flusher() -> None:
            while True:
                time.sleep(min(interval, 5.0))
                for fold in folds:
                    fold.flush(fold.clock())
        threading.Thread(target=flusher, name="log-fold", daemon=True).start()
    return folds
