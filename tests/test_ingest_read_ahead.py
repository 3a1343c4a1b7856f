"""Reading and geometry run one chunk ahead of the staging SQL on a worker thread (issue 11).

The contract of :func:`usagectl.sources.prepare.read_ahead`: the same items in the same order,
the reader's error raised where its item would have come, at most ``depth`` items waiting, and
the reader closed on the worker (its ``finally`` runs) however the consumer stops.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from usagectl.sources.prepare import read_ahead


def _counting(n: int, made: list[int], closed: list[bool], fail_at: int | None = None
              ) -> Iterator[int]:
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"bad chunk {i}")
            made.append(i)
            yield i
    finally:
        closed.append(True)


def test_yields_every_item_in_order_and_closes_the_reader() -> None:
    made: list[int] = []
    closed: list[bool] = []
    assert list(read_ahead(_counting(50, made, closed))) == list(range(50))
    assert closed == [True]


def test_a_reader_error_is_raised_after_the_items_before_it() -> None:
    made: list[int] = []
    closed: list[bool] = []
    got = []
    with pytest.raises(ValueError, match="bad chunk 3"):
        for item in read_ahead(_counting(10, made, closed, fail_at=3)):
            got.append(item)
    assert got == [0, 1, 2] and closed == [True]


def test_the_worker_stays_at_most_depth_items_ahead_and_stops_with_the_consumer() -> None:
    made: list[int] = []
    closed: list[bool] = []
    before = threading.active_count()
    it = read_ahead(_counting(1000, made, closed), depth=1)
    assert next(it) == 0
    # one item in the consumer's hands, one in the queue, one being offered: never the file
    for _ in range(100):
        if len(made) >= 3:
            break
        threading.Event().wait(0.01)
    assert len(made) <= 3
    it.close()
    assert closed == [True] and len(made) <= 3
    assert threading.active_count() == before


def test_an_error_in_the_consumer_stops_the_worker() -> None:
    made: list[int] = []
    closed: list[bool] = []
    before = threading.active_count()
    with pytest.raises(RuntimeError):
        for item in read_ahead(_counting(1000, made, closed)):
            if item == 2:
                raise RuntimeError("the SQL failed")
    assert closed == [True] and len(made) <= 5
    assert threading.active_count() == before
