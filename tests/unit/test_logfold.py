"""Issue 22 #21: during an API server outage the operator logged ~94 error lines a minute.
Repeats of one message (numbers aside) are folded into one line per interval, with a count."""

from __future__ import annotations

import logging

from atomic_operator.cli.logfold import FoldRepeats


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def test_repeats_are_one_line_per_interval_with_a_count() -> None:
    now = [0.0]
    out = Lines()
    fold = FoldRepeats(out, interval=60, clock=lambda: now[0])
    out.addFilter(fold)
    log = logging.getLogger("test.logfold")
    log.propagate = False
    log.addHandler(out)
    log.setLevel(logging.DEBUG)
    try:
        # one outage minute: 94 errors of two kinds, the attempt numbers differing
        for second in range(47):
            now[0] = second + 0.5
            log.error("Request attempt #%d/9 failed; will retry: Cannot connect to host "
                      "127.0.0.1:6443", second % 9 + 1)
            log.error("Handler 'reconcile' failed temporarily: API error: 503")
        log.info("an info line is never folded")
        log.info("an info line is never folded")
        assert out.lines == [
            "ERROR Request attempt #1/9 failed; will retry: Cannot connect to host "
            "127.0.0.1:6443",
            "ERROR Handler 'reconcile' failed temporarily: API error: 503",
            "INFO an info line is never folded", "INFO an info line is never folded"]
        out.lines.clear()
        now[0] = 61.0
        fold.flush(now[0])  # the flusher thread's call when the interval has ended
        assert out.lines == [
            "ERROR Request attempt #2/9 failed; will retry: Cannot connect to host "
            "127.0.0.1:6443 (repeated 46 more times in 60 s)",
            "ERROR Handler 'reconcile' failed temporarily: API error: 503 (repeated 46 more "
            "times in 60 s)"]
        out.lines.clear()
        log.warning("a different warning passes at once")
        log.error("Handler 'reconcile' failed temporarily: API error: 503")  # a new interval
        assert out.lines == ["WARNING a different warning passes at once",
                             "ERROR Handler 'reconcile' failed temporarily: API error: 503"]
        out.lines.clear()
        fold.flush()  # at exit: nothing repeated, nothing to say
        assert out.lines == []
    finally:
        log.removeHandler(out)
