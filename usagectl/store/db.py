"""The DuckDB file: opening it safely, its schema and migrations (SPEC §3.3, §6).

Every connection is made the same way: no network (DuckDB's automatic install and load of known
extensions is off, so nothing is ever downloaded at run time), progress bar off (DuckDB prints it
on *stdout*, which breaks CSV and JSON output — RELIABILITY.md), session time zone UTC (naive
timestamps would otherwise follow the machine's zone), and a lock conflict turned into a
:class:`DatabaseLockedError` that names the cause instead of a traceback. A file that is not a
DuckDB database (a SQLite file, text) is refused before DuckDB opens it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from usagectl import __version__
from usagectl.errors import (DatabaseLockedError, IOFailure, NotFoundError, UsagectlError,
                             ValidationError)

SCHEMA_VERSION = 4
DEFAULT_DB = "usage.duckdb"

# The events table's column order is the canonical order of sources.columns.CANONICAL.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR NOT NULL,
    value VARCHAR
);
CREATE SEQUENCE IF NOT EXISTS ingest_id_seq START 1;
-- One row per file ingest attempt: the audit trail (SPEC §3.3 "Audited").
CREATE TABLE IF NOT EXISTS ingests (
    id           BIGINT NOT NULL,
    path         VARCHAR NOT NULL,
    size_bytes   BIGINT,
    sha256       VARCHAR,
    format       VARCHAR,
    options      JSON,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    status       VARCHAR NOT NULL,          -- running | ok | failed
    rows_read    BIGINT NOT NULL DEFAULT 0,
    accepted     BIGINT NOT NULL DEFAULT 0,
    duplicates   BIGINT NOT NULL DEFAULT 0,
    rejected     BIGINT NOT NULL DEFAULT 0,
    conflicts    BIGINT NOT NULL DEFAULT 0, -- part of rejected
    repaired     BIGINT NOT NULL DEFAULT 0,
    blank_lines  BIGINT NOT NULL DEFAULT 0,
    error        VARCHAR,
    tool_version VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    owner_id         VARCHAR NOT NULL,
    event_id         VARCHAR NOT NULL,
    ts               TIMESTAMPTZ NOT NULL,
    user_id          VARCHAR NOT NULL,
    org_id           VARCHAR,
    product          VARCHAR,               -- NULL: a gateway log without products
    action           VARCHAR NOT NULL,      -- process | delete
    resource_id      VARCHAR,
    status           VARCHAR,
    succeeded        BOOLEAN NOT NULL,
    error_code       VARCHAR,
    endpoint         VARCHAR,
    method           VARCHAR,
    operation        VARCHAR,
    geometry         BLOB,                  -- WKB, EPSG:4326 lon/lat, valid, polygonal
    dataset_id       VARCHAR,
    indicator_ids    VARCHAR[],
    input_tokens     BIGINT,
    output_tokens    BIGINT,
    thinking_tokens  BIGINT,
    credits          DECIMAL(38, 9),
    response_time_ms DOUBLE,
    session_id       VARCHAR,
    request_id       VARCHAR,
    attributes       JSON,
    content_hash     VARCHAR NOT NULL,
    repaired         BOOLEAN NOT NULL DEFAULT false,
    ingest_id        BIGINT NOT NULL,
    source_line      BIGINT,
    ingested_at      TIMESTAMPTZ NOT NULL
    -- No PRIMARY KEY: (owner_id, event_id) is kept unique by the ingest's classify step under
    -- the single-writer lock. A DuckDB primary-key index must stay in memory at commit (memory
    -- grew with the table) and, after a failed COMMIT, kept the rolled-back keys, so those events
    -- could never be ingested again (measured; see docs/ingest.md).
);
CREATE TABLE IF NOT EXISTS rejects (
    ingest_id BIGINT NOT NULL,
    line      BIGINT,
    reason    VARCHAR NOT NULL,
    raw       VARCHAR
);
CREATE TABLE IF NOT EXISTS contracts (
    id         VARCHAR NOT NULL,
    owner      VARCHAR NOT NULL,
    definition JSON NOT NULL,
    source     VARCHAR,
    sha256     VARCHAR,
    loaded_at  TIMESTAMPTZ NOT NULL
);

-- Per-tile unique-area results (usagectl.meters.area_cache): derived data, safe to delete.
CREATE TABLE IF NOT EXISTS area_tiles (
    scope       VARCHAR NOT NULL,
    tx          BIGINT NOT NULL,
    ty          BIGINT NOT NULL,
    fingerprint VARCHAR NOT NULL,
    flags       INTEGER NOT NULL,
    result      VARCHAR NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL
);
"""

_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<proc>.*?) \(PID (?P<pid>\d+)\)")


def resolve_db_path(db: str | os.PathLike[str] | None) -> Path:
    """``--db``, else ``$USAGECTL_DB``, else ``./usage.duckdb``."""
    return Path(db or os.environ.get("USAGECTL_DB") or DEFAULT_DB)


#: DuckDB's own default is 80 % of RAM: with it, an ingest's peak memory grew with the file
#: (2.9 GiB at 5M rows). A fixed limit makes DuckDB spill to disk instead; override with
#: USAGECTL_MEMORY_LIMIT (e.g. "4GB").
DEFAULT_MEMORY_LIMIT = "1GB"


#: Given at connect (DuckDB 2.0 accepts these in ``config``): without them DuckDB downloads an
#: extension from extensions.duckdb.org when a file or function needs one (a SQLite file at
#: --db fetched ``sqlite_scanner``). usagectl needs only the built-in ones (json, parquet, icu).
NO_NETWORK = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}

#: The first bytes of a file: DuckDB writes "DUCK" at offset 8; SQLite starts with this string.
_DUCKDB_MAGIC = (8, b"DUCK")
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _refuse_other_formats(path: Path) -> None:
    """A file that is not DuckDB's is refused by name before DuckDB sees it (it would try an
    extension for some formats); an empty file is left to :func:`connect`."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except IsADirectoryError:
        raise IOFailure(f"cannot open database {path}: it is a folder", {"path": str(path)}) from None
    except OSError as exc:
        raise IOFailure(f"cannot open database {path}: {exc.strerror}", {"path": str(path)}) from None
    if not head:
        return
    offset, magic = _DUCKDB_MAGIC
    if head[offset:offset + len(magic)] == magic:
        return
    kind = "a SQLite database" if head.startswith(_SQLITE_MAGIC) else "not a DuckDB database file"
    raise ValidationError(
        f"{path} is {kind}, not a usagectl database (usagectl keeps its data in a DuckDB file); "
        "usagectl left it untouched. Point --db (or USAGECTL_DB) at the file `usagectl ingest` "
        "created, or at a new path", {"path": str(path)})


def _configure(con: duckdb.DuckDBPyConnection) -> None:
    # Must be a SET after connecting: passing it in config= fails (RELIABILITY.md).
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET memory_limit = ?", [os.environ.get("USAGECTL_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT])
    # Events need no particular physical order (every query orders explicitly).
    con.execute("SET preserve_insertion_order = false")
    threads = os.environ.get("USAGECTL_THREADS")
    if threads:
        con.execute("SET threads = ?", [int(threads)])


def connect(db: str | os.PathLike[str] | None = None, *, read_only: bool = False,
            create: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the database, migrating it when opened for writing.

    Read-only opens let several readers share the file; a writer holds it alone. Either way a
    lock held by another process becomes ``database_locked`` naming that process.
    """
    path = resolve_db_path(db)
    if not read_only and path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
        path.unlink()  # an empty file (e.g. made by mktemp): DuckDB creates its own there
    if not path.exists():
        if read_only or not create:
            raise NotFoundError(
                f"no database at {path}; run `usagectl ingest FILE` first, or pass --db "
                "(or set USAGECTL_DB) to use another file", {"path": str(path)})
        if not path.parent.exists():
            raise IOFailure(f"cannot create {path}: folder {path.parent} does not exist")
    if path.exists():
        _refuse_other_formats(path)
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=dict(NO_NETWORK))
    except duckdb.IOException as exc:
        msg = str(exc)
        m = _LOCK_RE.search(msg)
        if m or "lock" in msg.lower():
            # DuckDB names the holding program; say it as DuckDB does (it may not be usagectl).
            who = f"process {m.group('pid')}" if m else "another process"
            raise DatabaseLockedError(
                f"database {path} is locked by {who}; DuckDB says: {msg.strip()} "
                "Wait for that process to finish and try again, or use another --db.",
                {"path": str(path), "pid": int(m.group("pid")) if m else None,
                 "program": m.group("proc").strip() if m else None}) from None
        raise IOFailure(f"cannot open database {path}: {msg}", {"path": str(path)}) from None
    except duckdb.Error as exc:
        raise IOFailure(f"cannot open database {path}: {exc}; is it a DuckDB file?",
                        {"path": str(path)}) from None
    _configure(con)
    if read_only:
        _check_version(con, path)
    else:
        try:
            _refuse_foreign(con, path)
        except BaseException:
            con.close()
            raise
        migrate(con)
        recover_interrupted(con)
    return con


def _schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'").fetchone()
    if not has_meta or not has_meta[0]:
        return None
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def _foreign_objects(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables, views and sequences of a database without usagectl's schema (empty if ours)."""
    if _schema_version(con) is not None:
        return []
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "UNION ALL SELECT view_name FROM duckdb_views() "
        "WHERE NOT internal AND database_name = current_database() "
        "UNION ALL SELECT sequence_name FROM duckdb_sequences() "
        "WHERE database_name = current_database() ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def _refuse_foreign(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A writer never adds its tables to another program's DuckDB file (an empty one is fine)."""
    found = _foreign_objects(con)
    if found:
        shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
        raise ValidationError(
            f"{path} is not a usagectl database: it holds another program's tables ({shown}). "
            "usagectl left it untouched; point --db at a new file or at a database usagectl "
            "created", {"path": str(path), "tables": found})


def _check_version(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    version = _schema_version(con)
    if version is None:
        raise ValidationError(f"{path} is not a usagectl database (no schema); "
                              "point --db at the file `usagectl ingest` created")
    if version > SCHEMA_VERSION:
        raise ValidationError(f"{path} was written by a newer usagectl (schema {version}, this "
                              f"is {SCHEMA_VERSION}); upgrade usagectl")


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Create or upgrade the schema in one transaction.

    v1 → v2: the events table is rebuilt without its primary key (same columns, same rows).
    v2 → v3: the ``area_tiles`` cache table is added.
    v3 → v4: ``events.product`` becomes nullable (a gateway log has no product; SPEC §3.1).
    Existing rows are kept as they are.
    """
    version = _schema_version(con)
    if version is not None and version > SCHEMA_VERSION:
        raise ValidationError(f"database schema {version} is newer than this usagectl "
                              f"({SCHEMA_VERSION}); upgrade usagectl")
    if version == SCHEMA_VERSION:
        return
    con.execute("BEGIN")
    try:
        if version == 1:
            con.execute("ALTER TABLE events RENAME TO events_v1")
        con.execute(SCHEMA)
        if version in (2, 3):
            # CREATE TABLE IF NOT EXISTS kept the old definition: relax it in place.
            con.execute("ALTER TABLE events ALTER COLUMN product DROP NOT NULL")
        if version == 1:
            con.execute("INSERT INTO events SELECT * FROM events_v1")
            con.execute("DROP TABLE events_v1")
        con.execute("DELETE FROM meta WHERE key IN ('schema_version', 'created_by')")
        con.execute("INSERT INTO meta VALUES ('schema_version', ?), ('created_by', ?)",
                    [str(SCHEMA_VERSION), f"usagectl {__version__}"])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def recover_interrupted(con: duckdb.DuckDBPyConnection) -> None:
    """Mark ingests left ``running`` by a killed process as failed; drop their staging tables.

    Only one writer can hold the file, so any ``running`` row seen by a writer is stale. Its
    events were never committed (the commit and the status change are one transaction).
    """
    stale = con.execute("SELECT id FROM ingests WHERE status = 'running'").fetchall()
    for (ingest_id,) in stale:
        con.execute(
            "UPDATE ingests SET status = 'failed', accepted = 0, duplicates = 0, rejected = 0, "
            "conflicts = 0, repaired = 0, error = 'interrupted: the process ended before the "
            "file was committed; nothing from it was stored' WHERE id = ?", [ingest_id])
    for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_name LIKE 'staging\\_%' ESCAPE '\\'").fetchall():
        if re.fullmatch(r"staging_\d+(?:_csv)?", name):  # _csv: a bulk-read CSV's values
            con.execute(f"DROP TABLE IF EXISTS {name}")  # name checked against the pattern


_deferred: dict[str, list[Callable[[duckdb.DuckDBPyConnection], None]]] = {}


def defer_write(con: duckdb.DuckDBPyConnection, write: Callable[[duckdb.DuckDBPyConnection], None]
                ) -> None:
    """Run ``write`` on a writable connection once this read-only session closes.

    For derived data only (the area cache): if the file is busy then, the write is dropped.
    """
    row = con.execute("SELECT path FROM duckdb_databases() "
                      "WHERE database_name = current_database()").fetchone()
    if row and row[0]:
        _deferred.setdefault(str(Path(row[0]).resolve()), []).append(write)


def _run_deferred(path: Path) -> None:
    writes = _deferred.pop(str(path.resolve()), [])
    if not writes:
        return
    try:
        con = connect(path, create=False)
    except UsagectlError:
        return  # another process holds the file: the next report recomputes
    try:
        for write in writes:
            write(con)
    except duckdb.Error:
        pass
    finally:
        con.close()


@contextmanager
def session(db: str | os.PathLike[str] | None = None, *, read_only: bool = False
            ) -> Iterator[duckdb.DuckDBPyConnection]:
    """``with session(db) as con:`` — a connection closed however the block ends.

    Derived data a read-only session computed (``defer_write``) is stored when it closes.
    """
    con = connect(db, read_only=read_only)
    path = resolve_db_path(db)
    try:
        yield con
    except BaseException:
        con.close()
        _deferred.pop(str(path.resolve()), None)
        raise
    con.close()
    if read_only:
        _run_deferred(path)
