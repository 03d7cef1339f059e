"""The garbage collector's pace for a long-running operator.

CPython runs a full cyclic collection about every 70,000 net allocations while the heap
grows, and a full collection visits every tracked object: kopf's, pydantic's, and the
indexes' copies of every agent. With 300 agents created at once (bench/operator_scale.py,
collection times from `gc.callbacks`) that was 10 full collections of 100-230 ms each in
20 s, about 2 s of the operator's 7 s of CPU, with the event loop stopped for each. The
objects alive after start-up (modules, models, compiled templates) live as long as the
process, so they are frozen out of every collection, and young collections run less often,
which makes full ones rarer: 4 full collections, and 1 s of collecting in all instead of 2.
Memory freed by reference counting (nearly all of it) is unaffected; garbage in reference
cycles waits a little longer (peak RSS unchanged within 5 MB).
"""

from __future__ import annotations

import gc

THRESHOLDS = (3_000, 10, 10)
"""Allocations before a young collection, young collections before a middle one, middle
ones before a full one (CPython's defaults: 700, 10, 10)."""


def settle() -> None:
    """Freeze what start-up made and slow the collector down; call once, after start-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
