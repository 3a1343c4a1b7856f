"""Reading a large query result a batch at a time, within a small memory budget (docs/cli.md
"Streaming large outputs").

The log view, ``export`` and ``rejects`` write millions of rows. Their queries end in an
``ORDER BY``, which DuckDB sorts whole before the first row comes out: within the session's
``memory_limit`` (1 GB by default) and spilling the rest to its temp directory. While such a
result is streamed the limit is lowered to :data:`STREAM_MEMORY_LIMIT`, so that the sort
spills early and the process stays flat (measured: docs/cli.md); it is put back when the rows
have been read. A limit the user set with ``USAGECTL_MEMORY_LIMIT`` is left alone.

Not every operator can spill: the log's first-sighting marks group by every indicator id, and
an aggregate of millions of groups ran out of memory at 128 MB (500k events with 12 indicator
ids each). A query that runs out of memory under the streaming limit is run again under the
session's own limit — as much memory as without streaming, never a failure that the
non-streamed output would not have had.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import duckdb

from usagectl.store.db import DEFAULT_MEMORY_LIMIT

T = TypeVar("T")

#: DuckDB's memory limit while a streamed query runs and is read.
STREAM_MEMORY_LIMIT = "128MB"


def run_streamed(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any],
                 make: Callable[[tuple[Any, ...]], T], batch_size: int) -> Iterator[T]:
    """Run ``sql`` now and return an iterator of ``make(row)`` fetching ``batch_size`` rows at a
    time from the pending result; nothing else may run on ``con`` until it is consumed or
    closed (``close()`` puts the memory limit back at once, for a writer that gave up)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    restore = None
    if not os.environ.get("USAGECTL_MEMORY_LIMIT"):
        restore = DEFAULT_MEMORY_LIMIT  # what the session was opened with (store.db.connect)
        con.execute("SET memory_limit = ?", [STREAM_MEMORY_LIMIT])
    try:
        try:
            con.execute(sql, params)
        except duckdb.OutOfMemoryException:
            if restore is None:
                raise
            _restore(con, restore)
            restore = None
            con.execute(sql, params)  # under the session's limit, as without streaming
    except BaseException:
        _restore(con, restore)
        raise
    rows = _batches(con, make, batch_size, restore)
    next(rows)  # started: closing it now, read or not, puts the limit back (its finally runs)
    return rows


def _batches(con: duckdb.DuckDBPyConnection, make: Callable[[tuple[Any, ...]], T],
             batch_size: int, restore: str | None) -> Iterator[T]:
    try:
        yield None  # type: ignore[misc]  # the priming step of run_streamed, never seen outside
        while True:
            batch = con.fetchmany(batch_size)
            if not batch:
                return
            for row in batch:
                yield make(row)
    finally:
        _restore(con, restore)


def _restore(con: duckdb.DuckDBPyConnection, limit: str | None) -> None:
    if limit is None:
        return
    try:
        con.execute("SET memory_limit = ?", [limit])
    except duckdb.Error:
        pass  # the connection was closed with the stream unfinished: nothing to put back
