"""``export``: one CSV per contract × view and a manifest with SHA-256s, for cron (SPEC §6).

* File names come from contract ids made safe (:func:`usagectl.renderers.files.safe_stem`) and
  are checked to stay inside the folder.
* The folder is locked for the whole run (:func:`usagectl.renderers.files.folder_lock`): a
  second export into it waits, so the manifest always matches the files beside it.
* Each file is written atomically; a file that cannot be written is listed in ``failures`` with
  its path and the system's reason, and the others are still written. A manifest that cannot be
  written is an ``io_error`` naming it, with every failure in its details.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from usagectl import __version__
from usagectl.contracts import Contract, resolve_period
from usagectl.errors import IOFailure, UsagectlError
from usagectl.meters.select import Window
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.files import atomic_write, folder_lock, inside, safe_stem
from usagectl.reports.report import build_view

EXPORT_VIEWS = ("consolidated", "users", "daily", "log")
MANIFEST = "manifest.json"


def _problem(f: dict[str, Any]) -> str:
    return f"{f['contract']} {f['view'] or ''}: {f['error']}".replace("  ", " ")


def export(con: duckdb.DuckDBPyConnection, contracts: list[Contract], views: list[str],
           folder: Path, now: datetime, period: str | None = None, wait: float = 300
           ) -> dict[str, Any]:
    """Write the files and the manifest; return the manifest."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IOFailure(f"cannot create {folder}: {exc.strerror}", {"path": str(folder)}) from None
    files: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    with folder_lock(folder, wait):
        # A run killed mid-write leaves its temp file (never a half-written CSV); under the lock
        # no other run is writing, so every temp file here is stale.
        for stale in [*folder.glob(".*.csv.*.tmp"), *folder.glob(f".{MANIFEST}.*.tmp")]:
            stale.unlink(missing_ok=True)
        used: set[str] = set()
        for c in contracts:
            stem = safe_stem(c.id, used)
            try:
                window = Window(c, resolve_period(c, period, now), now)
            except UsagectlError as err:
                failures.append({"contract": c.id, "view": None, "file": None, "error": err.message})
                continue
            for view in views:
                name = f"{stem}.{view}.csv"
                path = inside(folder, name)
                try:
                    rows, cols = csvout.view_rows(view, build_view(con, window, view),
                                                  [m.name for m in c.meters])
                    data = csvout.render(rows, cols).encode("utf-8")
                    atomic_write(path, data)
                except UsagectlError as err:
                    failures.append({"contract": c.id, "view": view, "file": name,
                                     "error": err.message})
                    continue
                except OSError as exc:
                    failures.append({"contract": c.id, "view": view, "file": name,
                                     "error": f"cannot write {path}: {exc.strerror}"})
                    continue
                files.append({"name": name, "contract": c.id, "view": view, "rows": len(rows),
                              "sha256": hashlib.sha256(data).hexdigest(),
                              "period": window.period.to_dict(now)})
        manifest = {"tool_version": __version__, "as_of": now.isoformat(), "files": files,
                    "failures": failures}
        target = folder / MANIFEST
        try:
            atomic_write(target, jsonout.dumps(manifest).encode("utf-8"))
        except OSError as exc:
            raise IOFailure(f"cannot write {target}: {exc.strerror}",
                            {"path": str(target), "files": files, "failures": failures,
                             "problems": [_problem(f) for f in failures]}) from None
    return manifest
