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
        # the outage goes on: still one line per interval, the count
        log.warning("a different warning passes at once")
        log.error("Handler 'reconcile' failed temporarily: API error: 503")
        assert out.lines == ["WARNING a different warning passes at once"]
        now[0] = 122.0
        fold.flush(now[0])
        assert out.lines[1:] == ["ERROR Handler 'reconcile' failed temporarily: API error: "
                                 "503 (repeated 1 more time in 60 s)"]
        out.lines.clear()
        # an interval without repeats forgets the message: its next occurrence is written
        now[0] = 190.0
        fold.flush(now[0])
        log.error("Handler 'reconcile' failed temporarily: API error: 503")
        assert out.lines == ["ERROR Handler 'reconcile' failed temporarily: API error: 503"]
        out.lines.clear()
        log.error("Handler 'reconcile' failed temporarily: API error: 503")
        fold.flush()  # at exit: what is counted is written
        assert out.lines == ["ERROR Handler 'reconcile' failed temporarily: API error: 503 "
                             "(repeated 1 more time in 60 s)"]
    finally:
        log.removeHandler(out)
