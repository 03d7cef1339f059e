"""The collector's pace set at start-up (heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from atomic_operator import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_settle_freezes_what_exists_and_slows_the_young_generation() -> None:
    frozen = gc.get_freeze_count()
    alive = [[] for _ in range(10)]
    heap.settle()
    assert gc.get_freeze_count() >= frozen + len(alive)  # start-up's objects stay out
    assert gc.get_threshold() == heap.THRESHOLDS
    assert heap.THRESHOLDS[0] > 700  # CPython's default young threshold
