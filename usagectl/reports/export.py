"""``export``: one CSV per contract × view and a manifest with SHA-256s, for cron (SPEC §6).

* File names come from contract ids made safe (:func:`usagectl.renderers.files.safe_stem`),
  each depending only on its own id, and stay inside the folder: an entry that is a symbolic
  link is never written through (that file fails, the link is left alone).
* Every view of :data:`usagectl.reports.VIEWS` is built by
  :func:`usagectl.reports.report.build_view` and written as ``report --view V --format csv``
  writes it (:func:`usagectl.renderers.csvout.rows_of`), so a view added to the registry is
  exported with no change here; ``overlap`` is the ``overlap`` command's CSV, and a contract
  without a unique_area meter has none: it is listed in ``skipped``, not a failure.
* The folder is locked for the whole run (:func:`usagectl.renderers.files.folder_lock`): a
  second export into it waits, so the manifest always matches the files beside it.
* Each file is written atomically (a FIFO or a device already at its name is written into),
  streamed: the log's events are fetched from DuckDB and written a batch at a time, with the
  SHA-256 and the row count taken as they pass (flat memory whatever the log's size);
  a file that cannot be written is listed in ``failures`` with its path and the reason, and the
  others are still written. A manifest that cannot be written is an ``io_error`` naming it,
  with every failure in its details.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from usagectl import __version__
from usagectl.contracts import Contract, resolve_period
from usagectl.errors import IOFailure, UsagectlError
from usagectl.meters.select import Window
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.files import file_stems, folder_lock, inside, write_file
from usagectl.reports.report import STREAM_BATCH, build_view
from usagectl.store import contracts_repo

if TYPE_CHECKING:
    from usagectl.engines import ScalarEngine

MANIFEST = "manifest.json"


def _problem(f: dict[str, Any]) -> str:
    return f"{f['contract']} {f['view'] or ''}: {f['error']}".replace("  ", " ")


def _close(doc: dict[str, Any]) -> None:
    """End a streamed view's rows that were not read to the end (the connection is free again)."""
    for value in doc.values():
        if isinstance(value, Generator):
            value.close()


class _Tally:
    """Counts the rows and hashes the bytes of a CSV file as its pieces are written."""

    def __init__(self) -> None:
        self.rows = 0
        self.sha = hashlib.sha256()

    def counted(self, rows: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        if isinstance(rows, csvout.StreamRows):  # written a record batch at a time
            rows.on_rows = self._add
            return rows
        return self._each(rows)

    def _add(self, n: int) -> None:
        self.rows += n

    def _each(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            self.rows += 1
            yield row

    def hashed(self, pieces: Iterable[str]) -> Iterator[bytes]:
        for piece in pieces:
            data = piece.encode("utf-8")
            self.sha.update(data)
            yield data


def export(con: duckdb.DuckDBPyConnection, contracts: list[Contract], views: list[str],
           folder: Path, now: datetime, period: str | None = None, wait: float = 300,
           engine: Callable[[Window], AbstractContextManager[ScalarEngine]] | None = None
           ) -> dict[str, Any]:
    """Write the files and the manifest; return the manifest.

    ``views`` repeated are written once. Files from earlier runs with other views or contracts
    stay in the folder; the manifest lists what this run wrote. ``engine`` opens the scalar
    engine of one contract's window (``--engine spark``: :func:`usagectl.engines.open_engine`);
    the consolidated, users and daily views are computed on it, once opened per contract.
    """
    views = list(dict.fromkeys(views))
    # Stems from every stored id in a fixed order: a contract's file name is the same whether
    # the run exports it alone or with all the others.
    stems = file_stems([c.id for c in contracts_repo.list_contracts(con)] + [c.id for c in contracts])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IOFailure(f"cannot create {folder}: {exc.strerror}", {"path": str(folder)}) from None
    files: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    with folder_lock(folder, wait):
        # A run killed mid-write leaves its temp file (never a half-written CSV); under the lock
        # no other run is writing, so every temp file here is stale.
        for stale in [*folder.glob(".*.csv.*.tmp"), *folder.glob(f".{MANIFEST}.*.tmp")]:
            stale.unlink(missing_ok=True)
        for c in contracts:
            stem = stems[c.id]
            try:
                window = Window(c, resolve_period(c, period, now), now)
            except UsagectlError as err:
                failures.append({"contract": c.id, "view": None, "file": None, "error": err.message})
                continue
            with engine(window) if engine is not None else nullcontext() as scalars:
                _write_views(con, window, views, stem, folder, now, scalars, files, failures,
                             skipped)
        manifest = {"tool_version": __version__, "as_of": now.isoformat(), "files": files,
                    "failures": failures, "skipped": skipped}
        target = folder / MANIFEST
        try:
            write_file(target, jsonout.dumps(manifest).encode("utf-8"), through_links=False)
        except OSError as exc:
            raise IOFailure(f"cannot write {target}: {exc.strerror}",
                            {"path": str(target), "files": files, "failures": failures,
                             "problems": [_problem(f) for f in failures]}) from None
    return manifest


def _write_views(con: duckdb.DuckDBPyConnection, window: Window, views: list[str], stem: str,
                 folder: Path, now: datetime, scalars: ScalarEngine | None,
                 files: list[dict[str, Any]], failures: list[dict[str, Any]],
                 skipped: list[dict[str, Any]]) -> None:
    """One contract's files, one per view; a view that fails is listed in ``failures``, one
    that does not apply to the contract (``overlap`` without an area meter) in ``skipped``."""
    c = window.contract
    for view in views:
        if view == "overlap" and not any(m.aggregate == "unique_area" for m in c.meters):
            skipped.append({"contract": c.id, "view": view,
                            "reason": "the contract has no unique_area meter"})
            continue
        # The view comes from the registry and the stem from the contract id made safe;
        # ``inside`` checks the path stays in the folder all the same.
        name = f"{stem}.{view}.csv"
        path = folder / name
        try:
            path = inside(folder, name)
            doc = _view_doc(con, window, view, scalars)
            rows, cols = csvout.rows_of(view, doc, [m.name for m in c.meters])
            tally = _Tally()
            try:
                write_file(path, tally.hashed(csvout.chunks(tally.counted(rows), cols)),
                           through_links=False)
            finally:
                _close(doc)  # a file that failed midway: the stream ends here
        except UsagectlError as err:
            failures.append({"contract": c.id, "view": view, "file": name,
                             "error": err.message})
            continue
        except OSError as exc:
            failures.append({"contract": c.id, "view": view, "file": name,
                             "error": f"cannot write {path}: {exc.strerror}"})
            continue
        files.append({"name": name, "contract": c.id, "view": view, "rows": tally.rows,
                      "sha256": tally.sha.hexdigest(),
                      "period": window.period.to_dict(now)})


def _view_doc(con: duckdb.DuckDBPyConnection, window: Window, view: str,
              scalars: ScalarEngine | None) -> dict[str, Any]:
    """A view's document with its default options, as ``report --view`` (or ``overlap``)
    builds it; the log's events streamed."""
    if view == "overlap":
        from usagectl.reports.views import overlap_view

        return overlap_view(con, window, None)[0]
    return build_view(con, window, view, batch_size=STREAM_BATCH, scalars=scalars, columnar=True)
