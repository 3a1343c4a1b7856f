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

The JSON and CSV writers read the result as Arrow record batches instead (``columns``:
:class:`Batches`), from a relation's reader: a reader over a pending ``execute`` result copies
every row before the first batch (610 MiB at 1M events).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, TypeVar

import duckdb

from usagectl.store.db import DEFAULT_MEMORY_LIMIT

T = TypeVar("T")

#: Rows per Arrow record batch at most (:func:`run_streamed` with ``columns``): the JSON and
#: CSV text of a batch and its intermediate columns are held while it is formatted (measured at
#: 1M events, peak RSS: 350 MiB with 2048 rows, DuckDB's vector; 435 MiB with 10,000).
ARROW_BATCH = 2048
#: DuckDB's memory limit while a streamed query runs and is read.
STREAM_MEMORY_LIMIT = "128MB"


def run_streamed(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any],
                 make: Callable[[tuple[Any, ...]], T], batch_size: int, *,
                 columns: Columns | None = None) -> Iterator[T]:
    """Run ``sql`` now and return an iterator of ``make(row)`` fetching ``batch_size`` rows at a
    time from the pending result; nothing else may run on ``con`` until it is consumed or
    closed (``close()`` puts the memory limit back at once, for a writer that gave up).

    With ``columns`` (how ``make`` builds each row from the columns) the result is read as
    Arrow record batches instead, and the iterator is a :class:`Batches`: the JSON and CSV
    writers format its batches a column at a time (:mod:`usagectl.renderers.columnar`); taken
    row by row it gives the same ``make(row)`` as without.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    restore = None
    if not os.environ.get("USAGECTL_MEMORY_LIMIT"):
        restore = DEFAULT_MEMORY_LIMIT  # what the session was opened with (store.db.connect)
        con.execute("SET memory_limit = ?", [STREAM_MEMORY_LIMIT])
    start = _start_arrow if columns is not None else _start_rows
    try:
        try:
            started = start(con, sql, params, batch_size)
        except duckdb.OutOfMemoryException:
            if restore is None:
                raise
            _restore(con, restore)
            restore = None
            started = start(con, sql, params, batch_size)  # the session's limit, as unstreamed
    except BaseException:
        _restore(con, restore)
        raise
    if columns is not None:
        reader, first = started
        return Batches(con, reader, first, make, columns, restore)
    rows = _batches(con, make, batch_size, restore)
    next(rows)  # started: closing it now, read or not, puts the limit back (its finally runs)
    return rows


def _start_rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any],
                batch_size: int) -> None:
    con.execute(sql, params)


def _start_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any],
                 batch_size: int) -> tuple[Any, Any]:
    """A reader of the query's record batches and its first batch (None: no rows), read now so
    that the query runs (and fails) here. A relation's reader streams; an Arrow reader over a
    pending ``execute`` result copies every row first (measured: 610 MiB at 1M events)."""
    reader = con.sql(sql, params=params).to_arrow_reader(min(batch_size, ARROW_BATCH))
    try:
        first = reader.read_next_batch()
    except StopIteration:
        first = None
    return reader, first


@dataclass(frozen=True)
class Columns:
    """How a streamed query's ``make`` builds a row: ``dict(zip(keys, row))``, with the
    ``ts`` column (a TIMESTAMPTZ) as the ISO 8601 text of its instant in ``zone`` when a zone
    is given. The columnar writers rely on it to write exactly what ``make``'s rows give."""

    keys: tuple[str, ...]
    zone: tzinfo | None = None


class Batches(Generator[T, None, None]):
    """A streamed result read as Arrow record batches (:func:`run_streamed` with ``columns``).

    :meth:`batches` hands the record batches over whole; iterating gives ``make(row)`` row by
    row. Either way the memory limit is put back when the result is read out or closed.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, reader: Any, first: Any,
                 make: Callable[[tuple[Any, ...]], T], columns: Columns,
                 restore: str | None) -> None:
        self.columns = columns
        self._con, self._reader, self._first = con, reader, first
        self._make, self._restore_to = make, restore
        self._rows: Iterator[tuple[Any, ...]] = iter(())
        #: No row has been taken one by one yet: :meth:`batches` gives every row.
        self.untouched = True
        self._done = first is None
        if self._done:
            self.close()

    def batches(self) -> Iterator[Any]:
        """The remaining record batches (pyarrow.RecordBatch), each as DuckDB hands it over."""
        try:
            while not self._done:
                batch = self._next_batch()
                if batch is not None and batch.num_rows:
                    yield batch
        finally:
            self.close()

    def _next_batch(self) -> Any:
        if self._first is not None:
            batch, self._first = self._first, None
            return batch
        try:
            return self._reader.read_next_batch()
        except StopIteration:
            self.close()
            return None

    def send(self, value: Any) -> T:
        self.untouched = False
        while True:
            row = next(self._rows, None)
            if row is not None:
                return self._make(row)
            if self._done:
                raise StopIteration
            batch = self._next_batch()
            if batch is not None:
                self._rows = zip(*(c.to_pylist() for c in batch.columns))

    def throw(self, typ: Any = None, val: Any = None, tb: Any = None) -> T:
        self.close()
        raise typ if val is None else val

    def close(self) -> None:
        self._done = True
        self._first = None
        if self._reader is not None:
            reader, self._reader = self._reader, None
            try:
                reader.close()
            except Exception:  # noqa: BLE001 — already closed with its connection
                pass
        _restore(self._con, self._restore_to)
        self._restore_to = None

    def __del__(self) -> None:
        try:
            self.close()  # dropped unread: the memory limit back, as a generator's finally does
        except Exception:  # noqa: BLE001 — at interpreter exit the connection may be gone
            pass


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
