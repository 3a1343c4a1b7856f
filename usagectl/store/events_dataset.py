"""The events table as a Parquet dataset a cluster can read, and reading one back (SPEC §6, §8).

``export_events`` writes every stored event (of one owner, or of all) as Hive-partitioned
Parquet: ``DIR/owner=<owner>/month=YYYY-MM/data_<n>.parquet``. Every file holds all the columns
of the events table, in its order and with its types (DuckDB's ``TIMESTAMPTZ`` as a Parquet
``TIMESTAMP(isAdjustedToUTC=true, MICROS)``, ``DECIMAL(38, 9)`` as a decimal, the geometry as
WKB with GeoParquet 1.1 ``geo`` metadata), so a reader needs nothing from the folder names; the
folders only let it skip owners and months. docs/dataset.md describes the layout.

* **Rows.** Events are never changed or removed once stored (a delete is an event with
  ``action = 'delete'``; a conflicting re-upload is rejected), and every policy (``processed``,
  ``active``, ``audit``, ``--as-ingested-at``, ``include_failed``) is applied by the reports
  when they read. So the dataset holds every stored row of the owner, with every column the
  policies read: a reader applies them exactly as the reports do.
* **Folder names.** The owner is escaped as Hive and Spark escape partition values
  (:func:`encode_partition_value`): a hostile owner (``../x``, ``a/b``) stays one folder
  inside DIR, and Spark and DuckDB both read the value back unchanged.
* **Atomic.** Written into a temp folder beside DIR, fsynced, then renamed to DIR: a reader
  never sees half a dataset; a failed run removes its temp folder, and a killed one's is removed
  by the next export (its lock file is no longer held). A non-empty DIR is refused unless
  ``overwrite``, which replaces only a dataset an export wrote.
* **Memory.** DuckDB streams the table into the files (one ``COPY … PARTITION_BY``) within the
  connection's memory limit: peak RSS does not grow with the number of events
  (docs/dataset.md "Memory").
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from usagectl import __version__
from usagectl.errors import IOFailure, UsageError, ValidationError
from usagectl.store.db import EVENT_COLUMNS, EVENT_TYPES

#: Written at the dataset's root; Spark and Hive skip names starting with '_' or '.'.
MANIFEST = "_usagectl_events.json"
#: The layout's version, in the manifest; a reader refuses a newer one.
DATASET_VERSION = 1
#: The file a dataset without events holds, so that readers still find the schema.
EMPTY_FILE = "empty.parquet"
OWNER_KEY = "owner"
MONTH_KEY = "month"
#: Longest folder name most file systems accept, in bytes.
MAX_NAME_BYTES = 255

_COLUMNS = [name for name, _, _, _ in EVENT_COLUMNS]
_SELECT = ", ".join(_COLUMNS)  # identifiers from the fixed schema only

# -- partition values --------------------------------------------------------------------------

#: The characters Hive (FileUtils.escapePathName) and Spark (ExternalCatalogUtils) escape in a
#: partition value, plus NUL: control characters, '"#%'*/:=?\\{[]^' and DEL. Other characters,
#: non-ASCII ones included, are kept as they are (Spark decodes a '%XX' into one character, so
#: escaping the UTF-8 bytes of 'é' would read back as 'Ã©').
_ESCAPED = frozenset(chr(c) for c in range(0x20)) | frozenset('"#%\'*/:=?\\\x7f{[]^')


def encode_partition_value(value: str) -> str:
    """A partition value as a folder name: each escaped character as ``%XX`` (upper-case hex).

    ``a/b`` → ``a%2Fb``, ``../x`` → ``..%2Fx`` (the folder ``owner=..%2Fx``, inside DIR), ``100%``
    → ``100%25``. Reversed by :func:`decode_partition_value`. The empty string, which no stored
    owner can be, is refused: Hive writes it as ``__HIVE_DEFAULT_PARTITION__``, read back as NULL.
    """
    if value == "":
        raise ValidationError("an empty owner id cannot name a partition folder")
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in value)


def decode_partition_value(text: str) -> str:
    """The value a folder name holds: every ``%XX`` back to its character (as Spark reads it)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%" and _is_hex(text[i + 1:i + 3]):
            out.append(chr(int(text[i + 1:i + 3], 16)))
            i += 3
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _is_hex(s: str) -> bool:
    return len(s) == 2 and all(ch in "0123456789abcdefABCDEF" for ch in s)


def owner_folder(owner: str) -> str:
    """The folder of an owner's events: ``owner=`` and the escaped id."""
    name = f"{OWNER_KEY}={encode_partition_value(owner)}"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValidationError(
            f"owner {owner[:60]!r}… is too long to name a folder ({len(name.encode('utf-8'))} "
            f"bytes escaped, at most {MAX_NAME_BYTES}); export the other owners with --owner",
            {"owner": owner})
    return name


# -- GeoParquet metadata -----------------------------------------------------------------------

_WKB_TYPES = {1: "Point", 2: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString",
              6: "MultiPolygon", 7: "GeometryCollection"}


def _geometry_type(header: bytes) -> str | None:
    """The GeoParquet name of a WKB's type from its first 5 bytes (ISO or EWKB); None if odd."""
    if len(header) < 5 or header[0] not in (0, 1):
        return None
    code = struct.unpack("<I" if header[0] == 1 else ">I", header[1:5])[0]
    z = bool(code & 0x80000000)
    m = bool(code & 0x40000000)
    code &= 0x0FFFFFFF
    dims, base = divmod(code, 1000)
    z, m = z or dims in (1, 3), m or dims in (2, 3)
    name = _WKB_TYPES.get(base)
    if name is None or dims > 3 or m:  # GeoParquet names no measured (M) types
        return None
    return name + (" Z" if z else "")


def geo_metadata(geometry_types: list[str]) -> dict[str, Any]:
    """The GeoParquet 1.1 ``geo`` metadata of the files: WKB in lon/lat WGS84 (OGC:CRS84)."""
    from pyproj import CRS

    return {"version": "1.1.0", "primary_column": "geometry",
            "columns": {"geometry": {"encoding": "WKB", "geometry_types": geometry_types,
                                     "crs": CRS("OGC:CRS84").to_json_dict()}}}


# -- writing -----------------------------------------------------------------------------------

def _owner_filter(owner: str | None, alias: str = "") -> tuple[str, list[Any]]:
    p = alias + "." if alias else ""
    return (f"{p}owner_id = ?", [owner]) if owner is not None else ("true", [])


def export_events(con: duckdb.DuckDBPyConnection, target: str | os.PathLike[str],
                  owner: str | None = None, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the events (of ``owner``, or every owner) as a Parquet dataset at ``target``.

    Returns the manifest (also written as ``_usagectl_events.json``): rows, and per owner its
    folder, rows and months. Raises :class:`UsageError` for a target that is not an empty or new
    folder (a non-empty one is replaced with ``overwrite`` when an export wrote it).
    """
    folder = _check_target(target, overwrite)
    with _settings(con, _write_settings()):
        return _export(con, folder, owner, overwrite)


def _export(con: duckdb.DuckDBPyConnection, folder: Path, owner: str | None, overwrite: bool
            ) -> dict[str, Any]:
    where, params = _owner_filter(owner)
    owners = [(o, int(n)) for o, n in con.execute(
        f"SELECT owner_id, count(*) FROM events WHERE {where} GROUP BY owner_id ORDER BY owner_id",
        params).fetchall()]
    folders = {o: owner_folder(o) for o, _ in owners}  # too long: refused before writing
    headers = con.execute(
        f"SELECT DISTINCT array_slice(geometry, 1, 5) FROM events WHERE {where} AND geometry IS NOT NULL",
        params).fetchall()
    types = sorted({t for (h,) in headers if (t := _geometry_type(bytes(h))) is not None})
    if len(types) < len(headers):
        types = []  # an unrecognised WKB header: GeoParquet's "types not known"
    geo = json.dumps(geo_metadata(types), separators=(",", ":"))
    with _temp_folder(folder) as tmp:
        rows = _write_files(con, tmp, owners, owner, geo)
        months = _name_owner_folders(tmp, owners, folders)
        manifest = {
            "format": "usagectl-events", "version": DATASET_VERSION, "tool_version": __version__,
            "rows": rows, "owner": owner,
            "partitioning": {"keys": [OWNER_KEY, MONTH_KEY], "style": "hive",
                             "owner": "owner_id escaped as Hive/Spark escape partition values",
                             "month": "YYYY-MM of ts in UTC"},
            "columns": [{"name": c, "type": EVENT_TYPES[c]} for c in _COLUMNS],
            "geometry_types": types,
            "owners": [{"owner_id": o, "folder": folders[o], "rows": n, "months": months[o]}
                       for o, n in owners],
        }
        try:
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
            _fsync_tree(tmp)
        except OSError as exc:
            raise IOFailure(f"cannot write the dataset beside {folder}: {exc.strerror}",
                            {"path": str(folder)}) from None
        _replace(tmp, folder, overwrite)
    return {**manifest, "path": str(folder)}


def _write_files(con: duckdb.DuckDBPyConnection, tmp: Path, owners: list[tuple[str, int]],
                 owner: str | None, geo: str) -> int:
    """One streamed COPY into ``tmp/owner_key=<i>/month=<m>/``; the row count written.

    The owner's folder is first named by its index in ``owners`` (DuckDB would URL-encode the
    id its own way) and renamed after; ``owner_key`` and ``month`` are not stored in the files.
    """
    if not owners:
        # Readers infer the schema from a file: a dataset without events still has one.
        try:
            con.execute(f"COPY (SELECT {_SELECT} FROM events WHERE false) TO ? "
                        "(FORMAT parquet, KV_METADATA {geo: ?})", [str(tmp / EMPTY_FILE), geo])
        except duckdb.IOException as exc:
            raise IOFailure(f"cannot write the dataset beside {tmp.parent}: {_first_line(exc)}",
                            {"path": str(tmp.parent)}) from None
        return 0
    ids = [o for o, _ in owners]
    where, params = _owner_filter(owner, "e")
    sql = f"""
COPY (
    SELECT {', '.join('e.' + c for c in _COLUMNS)}, k.owner_key,
        strftime(timezone('UTC', e.ts), '%Y-%m') AS month
    FROM events e
    JOIN (SELECT unnest(?::VARCHAR[]) AS owner_id, unnest(range(?)) AS owner_key) k
      ON k.owner_id = e.owner_id
    WHERE {where}
) TO ? (FORMAT parquet, PARTITION_BY (owner_key, month), KV_METADATA {{geo: ?}})"""
    try:
        row = con.execute(sql, [ids, len(ids), *params, str(tmp), geo]).fetchone()
    except duckdb.IOException as exc:  # a full disk, a file system error mid-write
        raise IOFailure(f"cannot write the dataset beside {tmp.parent}: {_first_line(exc)}",
                        {"path": str(tmp.parent)}) from None
    return int(row[0]) if row else 0


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400]


#: DuckDB keeps each thread's rows of a partitioned COPY until it holds 524,288 of them: that
#: held the export in memory up to the memory limit (914 MiB peak RSS at 1M events). Flushing
#: every 10,000 rows, and a memory limit of 256 MB for the export's queries (the buffer pool
#: otherwise keeps the scanned table up to the 1 GB limit: 1.1 GiB at 10M events), keep the peak
#: flat (docs/dataset.md "Memory").
FLUSH_ROWS = 10_000
EXPORT_MEMORY_LIMIT = "256MB"


def _write_settings() -> dict[str, str | int]:
    """The settings of the export's COPY; USAGECTL_MEMORY_LIMIT, when set, is the limit."""
    return {"partitioned_write_flush_threshold": FLUSH_ROWS,
            "memory_limit": os.environ.get("USAGECTL_MEMORY_LIMIT") or EXPORT_MEMORY_LIMIT}


@contextmanager
def _settings(con: duckdb.DuckDBPyConnection, values: dict[str, str | int]) -> Iterator[None]:
    """DuckDB settings (names from a fixed dict) for one statement, restored after."""
    before = {k: con.execute("SELECT current_setting(?)", [k]).fetchone()[0]  # type: ignore[index]
              for k in values}
    try:
        for k, v in values.items():
            con.execute(f"SET {k} = ?", [v])
        yield
    finally:
        for k, v in before.items():
            con.execute(f"SET {k} = ?", [v])


def _name_owner_folders(tmp: Path, owners: list[tuple[str, int]], folders: dict[str, str]
                        ) -> dict[str, list[str]]:
    """Rename ``owner_key=<i>`` to the owner's folder; each owner's months, sorted."""
    months: dict[str, list[str]] = {}
    for i, (o, _) in enumerate(owners):
        src = tmp / f"owner_key={i}"
        dst = tmp / folders[o]
        try:
            os.rename(src, dst)
        except OSError as exc:
            # Two owners that differ only by case, on a file system that ignores case.
            raise IOFailure(f"cannot write the folder of owner {o!r} ({dst.name}): {exc.strerror}",
                            {"owner": o, "path": str(dst)}) from None
        months[o] = sorted(p.name.split("=", 1)[1] for p in dst.iterdir() if p.is_dir())
    return months


def _check_target(target: str | os.PathLike[str], overwrite: bool) -> Path:
    text = os.fspath(target)
    if "://" in text:
        raise UsageError(f"--events {text}: export writes a local folder; write it here, then "
                         "copy it to object storage (e.g. `aws s3 sync DIR s3://…`)",
                         {"option": "--events", "value": text})
    folder = Path(text).resolve()  # a link to a folder: the folder it points to
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--events {text} exists and is not a folder; give a new or empty folder",
                         {"option": "--events", "value": text})
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise UsageError(f"--events {text} is not empty; pass --overwrite to replace the "
                             "dataset in it, or give a new or empty folder",
                             {"option": "--events", "value": text})
        if not (folder / MANIFEST).is_file():
            raise UsageError(f"--events {text} holds files that are not an events dataset (no "
                             f"{MANIFEST}); --overwrite replaces only a folder that export wrote: "
                             "empty it yourself or give another folder",
                             {"option": "--events", "value": text})
    if folder.parent == folder:
        raise UsageError(f"--events {text}: give a folder below the root",
                         {"option": "--events", "value": text})
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IOFailure(f"cannot create {folder.parent}: {exc.strerror}",
                        {"path": str(folder.parent)}) from None
    return folder


def _temp_prefix(folder: Path) -> str:
    return f".{folder.name}.export-"


@contextmanager
def _temp_folder(folder: Path) -> Iterator[Path]:
    """A new temp folder beside ``folder``, held by a lock file; removed unless renamed away.

    Temp folders of earlier runs whose lock is no longer held (the process died) are removed.
    """
    _remove_stale(folder)
    name = f"{_temp_prefix(folder)}{uuid.uuid4().hex[:12]}"
    tmp = folder.parent / name
    lock = folder.parent / f"{name}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise IOFailure(f"cannot write beside {folder} (the dataset is written to a temp folder "
                        f"there, then renamed): {exc.strerror}", {"path": str(folder)}) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            tmp.mkdir()
        except OSError as exc:
            raise IOFailure(f"cannot create {tmp}: {exc.strerror}", {"path": str(tmp)}) from None
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already when renamed to the target
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _remove_stale(folder: Path) -> None:
    prefix = _temp_prefix(folder)
    try:
        names = os.listdir(folder.parent)
    except OSError:
        return
    for n in names:
        if not n.startswith(prefix) or n.endswith(".lock"):
            continue
        lock = folder.parent / f"{n}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            fd = None  # its writer finished or died after removing the lock
        except OSError:
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # type: ignore[arg-type]
            continue  # a live export
        try:
            shutil.rmtree(folder.parent / n, ignore_errors=True)
            lock.unlink(missing_ok=True)
        finally:
            if fd is not None:
                os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under ``root`` on disk before the rename makes them visible."""
    for dirpath, _, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace(tmp: Path, folder: Path, overwrite: bool) -> None:
    """Rename ``tmp`` to ``folder``; with ``overwrite``, a dataset already there is moved aside,
    then removed. Without it, a folder that another run filled meanwhile is not replaced."""
    old = None
    try:
        if overwrite and (folder / MANIFEST).is_file():
            old = folder.parent / f"{_temp_prefix(folder)}old-{uuid.uuid4().hex[:12]}"
            os.rename(folder, old)
        os.rename(tmp, folder)  # over an empty folder, or into the free name
    except OSError as exc:
        if old is not None and not folder.exists():
            os.rename(old, folder)  # put the previous dataset back
        hint = (" (another export wrote it meanwhile; pass --overwrite to replace it)"
                if folder.is_dir() and not overwrite else "")
        raise IOFailure(f"cannot rename the finished dataset to {folder}: {exc.strerror}{hint}",
                        {"path": str(folder)}) from None
    fd = os.open(folder.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- reading -----------------------------------------------------------------------------------

def dataset_files(path: str | os.PathLike[str], owner: str | None = None) -> list[str]:
    """The Parquet files of a dataset (of one owner's folder when given), sorted."""
    root = Path(path)
    if not root.is_dir():
        raise IOFailure(f"no events dataset at {root}: not a folder", {"path": str(root)})
    manifest = root / MANIFEST
    if manifest.is_file():
        try:
            version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        except (OSError, ValueError, AttributeError):
            version = None
        if not isinstance(version, int) or version > DATASET_VERSION:
            raise ValidationError(f"{root} is an events dataset of layout {version!r}; this "
                                  f"usagectl reads layout {DATASET_VERSION} (upgrade usagectl)",
                                  {"path": str(root)})
    out = []
    for dirpath, dirnames, files in os.walk(root):
        # Spark's rule: names starting with '.' or '_' are not data (temp folders, manifests).
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
        out += [os.path.join(dirpath, f) for f in files
                if f.endswith(".parquet") and not f.startswith((".", "_"))]
    if not out:
        raise ValidationError(f"{root} holds no Parquet files: not an events dataset",
                              {"path": str(root)})
    if owner is not None:
        mine = root / owner_folder(owner)
        # The empty file keeps the schema when the owner has no folder.
        out = [f for f in out if Path(f).is_relative_to(mine)] or [out[0]]
    return sorted(out)


def read_events_dataset(con: duckdb.DuckDBPyConnection, path: str | os.PathLike[str],
                        owner: str | None = None) -> duckdb.DuckDBPyRelation:
    """The events of a dataset :func:`export_events` wrote (``owner``'s only, when given), as a
    relation with the events table's columns, order and types.

    Columns are read from the files, never from the folder names; a file whose schema differs
    from the events table's is refused naming the column.
    """
    files = dataset_files(path, owner)
    where, params = _owner_filter(owner)
    # DuckDB reads a column the 'geo' metadata names as GEOMETRY; the cast gives back the
    # stored WKB byte for byte (tested: ISO and EWKB, either byte order, Z).
    cols = ", ".join("CAST(geometry AS BLOB) AS geometry" if c == "geometry" else c
                     for c in _COLUMNS)
    try:
        rel = con.sql(f"SELECT {cols} FROM read_parquet(?, hive_partitioning = false) "
                      f"WHERE {where}", params=[files, *params])
    except duckdb.Error as exc:  # a missing column, a file that is not Parquet
        raise ValidationError(f"{path} is not an events dataset usagectl exported: "
                              f"{str(exc).splitlines()[0][:300]}", {"path": str(path)}) from None
    # The table's types as DuckDB names them (TIMESTAMPTZ is "TIMESTAMP WITH TIME ZONE").
    want = con.sql("SELECT " + ", ".join(f"NULL::{t} AS {n}" for n, t in EVENT_TYPES.items()))
    for name, got, typ in zip(rel.columns, rel.types, want.types, strict=True):
        if got != typ:
            raise ValidationError(f"{path}: column {name} is {got}, the events table's is {typ}: "
                                  "not a dataset usagectl exported",
                                  {"path": str(path), "column": name})
    return rel
