"""The DuckDB file: opening it safely, its schema and migrations (SPEC §3.3, §6).

Every connection is made the same way: no network (DuckDB's automatic install and load of known
extensions is off, so nothing is ever downloaded at run time), progress bar off (DuckDB prints it
on *stdout*, which breaks CSV and JSON output — RELIABILITY.md), session time zone UTC (naive
timestamps would otherwise follow the machine's zone), and a lock another process holds retried
for up to ``--wait`` seconds, then turned into a :class:`DatabaseLockedError` that names the cause
instead of a traceback. An ingest's staging files beside the database, and how a writer tells a
live ingest from a dead one, are here too (:class:`StagingClaim`; docs/ingest.md "Locks"). A file that is not a
DuckDB database (a SQLite file, text) is refused before DuckDB opens it.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from usagectl import __version__
from usagectl.store import lockwait
from usagectl.store.lockwait import lock_wait
from usagectl.errors import (DatabaseLockedError, IOFailure, NotFoundError, UsagectlError,
                             ValidationError)

SCHEMA_VERSION = 4
DEFAULT_DB = "usage.duckdb"

# The events table's column order is the canonical order of sources.columns.CANONICAL.
#: The events table's columns in order: (name, type, constraint, comment). The schema below is
#: written from this list, and an ingest's staging table takes its types from :data:`EVENT_TYPES`
#: (``usagectl.store.ingest``), so that the two can never drift apart. The order is the canonical
#: order of sources.columns.CANONICAL.
EVENT_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("owner_id", "VARCHAR", "NOT NULL", ""),
    ("event_id", "VARCHAR", "NOT NULL", ""),
    ("ts", "TIMESTAMPTZ", "NOT NULL", ""),
    ("user_id", "VARCHAR", "NOT NULL", ""),
    ("org_id", "VARCHAR", "", ""),
    ("product", "VARCHAR", "", "NULL: a gateway log without products"),
    ("action", "VARCHAR", "NOT NULL", "process | delete"),
    ("resource_id", "VARCHAR", "", ""),
    ("status", "VARCHAR", "", ""),
    ("succeeded", "BOOLEAN", "NOT NULL", ""),
    ("error_code", "VARCHAR", "", ""),
    ("endpoint", "VARCHAR", "", ""),
    ("method", "VARCHAR", "", ""),
    ("operation", "VARCHAR", "", ""),
    ("geometry", "BLOB", "", "WKB, EPSG:4326 lon/lat, valid, polygonal"),
    ("dataset_id", "VARCHAR", "", ""),
    ("indicator_ids", "VARCHAR[]", "", ""),
    ("input_tokens", "BIGINT", "", ""),
    ("output_tokens", "BIGINT", "", ""),
    ("thinking_tokens", "BIGINT", "", ""),
    ("credits", "DECIMAL(38, 9)", "", ""),
    ("response_time_ms", "DOUBLE", "", ""),
    ("session_id", "VARCHAR", "", ""),
    ("request_id", "VARCHAR", "", ""),
    ("attributes", "JSON", "", ""),
    ("content_hash", "VARCHAR", "NOT NULL", ""),
    ("repaired", "BOOLEAN", "NOT NULL DEFAULT false", ""),
    ("ingest_id", "BIGINT", "NOT NULL", ""),
    ("source_line", "BIGINT", "", ""),
    ("ingested_at", "TIMESTAMPTZ", "NOT NULL", ""),
)
#: Column name → SQL type of the events table.
EVENT_TYPES: dict[str, str] = {name: typ for name, typ, _, _ in EVENT_COLUMNS}


def _events_ddl() -> str:
    lines = []
    for i, (name, typ, constraint, comment) in enumerate(EVENT_COLUMNS):
        text = f"    {name:<16} {typ}{' ' + constraint if constraint else ''}"
        if i < len(EVENT_COLUMNS) - 1:
            text += ","
        if comment:
            text = f"{text:<43} -- {comment}"
        lines.append(text + "\n")
    return ("CREATE TABLE IF NOT EXISTS events (\n" + "".join(lines) +
            "    -- No PRIMARY KEY: (owner_id, event_id) is kept unique by the ingest's classify step under\n"
            "    -- the single-writer lock. A DuckDB primary-key index must stay in memory at commit (memory\n"
            "    -- grew with the table) and, after a failed COMMIT, kept the rolled-back keys, so those events\n"
            "    -- could never be ingested again (measured; see docs/ingest.md).\n"
            ");\n")


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
""" + _events_ddl() + """CREATE TABLE IF NOT EXISTS rejects (
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
            create: bool = True, wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the database, migrating it when opened for writing.

    Read-only opens let several readers share the file; a writer holds it alone. While another
    process holds a conflicting lock the open is retried for up to ``wait`` seconds (default
    :func:`lock_wait`); then the lock becomes ``database_locked`` naming that process.
    """
    limit = lock_wait() if wait is None else wait
    deadline = time.monotonic() + limit
    pause = 0.02
    told = False
    while True:
        try:
            return _connect_once(db, read_only=read_only, create=create, waited=limit)
        except DatabaseLockedError as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            if not told:
                told = True
                who = f"process {exc.details['pid']}" if exc.details.get("pid") else "another process"
                lockwait.waiting(f"database {exc.details['path']} is in use by {who}; waiting up "
                                 f"to {limit:g} s for it (--wait)")
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.25)


def _connect_once(db: str | os.PathLike[str] | None, *, read_only: bool, create: bool,
                  waited: float) -> duckdb.DuckDBPyConnection:
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
            waited_text = (f"usagectl waited {waited:g} s for it (--wait). " if waited > 0
                           else "")
            raise DatabaseLockedError(
                f"database {path} is locked by {who}; DuckDB says: {msg.strip()} "
                f"{waited_text}Wait for that process to finish and try again (or raise --wait), "
                "or use another --db.",
                {"path": str(path), "pid": int(m.group("pid")) if m else None,
                 "program": m.group("proc").strip() if m else None,
                 "waited_seconds": waited}) from None
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
            migrate(con)
            recover_interrupted(con, path)
        except BaseException:
            con.close()
            raise
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


def recover_interrupted(con: duckdb.DuckDBPyConnection, path: Path | None = None) -> None:
    """Mark ingests left ``running`` by a dead process as failed; remove their staging files.

    Called by every writer, under the database's write lock. An ingest stages its file outside
    that lock, so a ``running`` row may belong to a live process: it is stale only when the
    staging claim of its id (:class:`StagingClaim`) is no longer held — the kernel releases it
    when the process dies, however it dies. Its events were never committed (the commit and the
    status change are one transaction). Staging files that no live process holds are removed.
    """
    where = path if path is not None else _database_path(con)
    for (ingest_id,) in con.execute(
            "SELECT id FROM ingests WHERE status = 'running' ORDER BY id").fetchall():
        if where is not None and StagingClaim.held_elsewhere(where, int(ingest_id)):
            continue  # a live ingest staging its file
        con.execute(
            "UPDATE ingests SET status = 'failed', accepted = 0, duplicates = 0, rejected = 0, "
            "conflicts = 0, repaired = 0, error = 'interrupted: the process ended before the "
            "file was committed; nothing from it was stored' WHERE id = ?", [ingest_id])
    if where is not None:
        StagingClaim.remove_stale(where)
    # Databases written before staging moved to its own file kept staging_<id> tables here.
    for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_name LIKE 'staging\\_%' ESCAPE '\\'").fetchall():
        if re.fullmatch(r"staging_\d+(?:_csv)?", name):  # _csv: a bulk-read CSV's values
            con.execute(f"DROP TABLE IF EXISTS {name}")  # name checked against the pattern


def _database_path(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The file of a connection's database (None in memory)."""
    row = con.execute("SELECT path FROM duckdb_databases() "
                      "WHERE database_name = current_database()").fetchone()
    return Path(row[0]) if row and row[0] else None


class StagingClaim:
    """An ingest's staging file beside the database, and the lock that says its owner lives.

    ``<db>.staging-<id>.duckdb`` holds the typed rows of ingest ``<id>`` while the file is read;
    ``<db>.staging-<id>.lock`` is held with ``flock`` by the ingesting process from the moment its
    ``running`` row is written (inside that transaction, under the database's write lock) until
    its final status is committed and the staging file removed. The kernel drops the lock when the
    process dies, even by ``kill -9``, so a writer that can take it knows the owner is gone.
    """

    def __init__(self, db_path: Path, ingest_id: int) -> None:
        db_path = db_path.resolve()
        self.db_path = db_path
        self.ingest_id = int(ingest_id)
        self.path = _staging_path(db_path, self.ingest_id)
        self.lock_path = _lock_path(db_path, self.ingest_id)
        self._fd: int | None = None

    @classmethod
    def take(cls, db_path: Path, ingest_id: int) -> StagingClaim:
        """Claim ingest ``ingest_id`` (call under the database's write lock, before committing
        its ``running`` row); a leftover file of a dead process with the same id is taken over."""
        claim = cls(db_path, ingest_id)
        try:
            fd = os.open(claim.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                         0o644)
        except OSError as exc:
            raise IOFailure(f"cannot create {claim.lock_path} (an ingest stages its file beside "
                            f"the database): {exc.strerror}", {"path": str(claim.lock_path)}) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise IOFailure(f"cannot claim {claim.lock_path}: another process holds it",
                            {"path": str(claim.lock_path)}) from None
        claim._fd = fd
        claim.remove_files()  # a dead process's leftover with this id
        return claim

    def remove_files(self) -> None:
        for p in _staging_files(self.path):
            _unlink(p)

    def release(self) -> None:
        """Remove the staging file, then the lock file, then let go of the lock."""
        if self._fd is None:
            return
        try:
            self.remove_files()
            _unlink(self.lock_path)
        finally:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def held_elsewhere(db_path: Path, ingest_id: int) -> bool:
        """True while a live process holds the claim of ``ingest_id``."""
        lock = _lock_path(db_path.resolve(), ingest_id)
        fd = _try_lock(lock)
        if fd is None:
            return lock.exists()  # missing: no claim; present but busy: held
        os.close(fd)
        return False

    @staticmethod
    def remove_stale(db_path: Path) -> None:
        """Remove staging and lock files beside ``db_path`` that no live process holds."""
        db_path = db_path.resolve()
        prefix = db_path.name + ".staging-"
        try:
            names = os.listdir(db_path.parent)
        except OSError:
            return
        for name in names:
            m = re.fullmatch(re.escape(prefix) + r"(\d+)\.lock", name)
            if not m:
                continue
            lock = db_path.parent / name
            fd = _try_lock(lock)
            if fd is None:
                continue
            try:
                for p in _staging_files(_staging_path(db_path, int(m.group(1)))):
                    _unlink(p)
                _unlink(lock)
            finally:
                os.close(fd)
        for name in names:  # a staging file whose lock file is gone: its owner removed that last
            m = re.fullmatch(re.escape(prefix) + r"(\d+)\.duckdb(\.wal|\.tmp|\.regions\.csv|\.regions\.jsonl)?", name)
            if m and not _lock_path(db_path, int(m.group(1))).exists():
                _unlink(db_path.parent / name)


def _staging_path(db_path: Path, ingest_id: int) -> Path:
    return db_path.with_name(f"{db_path.name}.staging-{int(ingest_id)}.duckdb")


def _lock_path(db_path: Path, ingest_id: int) -> Path:
    return db_path.with_name(f"{db_path.name}.staging-{int(ingest_id)}.lock")


def _staging_files(path: Path) -> list[Path]:
    # DuckDB's write-ahead log and its spill folder sit beside the file.
    # A CSV or JSON Lines file with regions copies its vouched lines beside it
    # (ingest._spans_path).
    return [path, path.with_name(path.name + ".wal"), path.with_name(path.name + ".tmp"),
            path.with_name(path.name + ".regions.csv"),
            path.with_name(path.name + ".regions.jsonl")]


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)


def _try_lock(path: Path) -> int | None:
    """An fd holding ``path``'s flock, or None if another process holds it or it is gone."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The owner unlinks its lock file before letting go: a lock on a file no longer at
        # that path proves nothing.
        if os.fstat(fd).st_ino != os.stat(path, follow_symlinks=False).st_ino:
            raise OSError
    except OSError:
        os.close(fd)
        return None
    return fd


def staging_connect(path: Path) -> duckdb.DuckDBPyConnection:
    """A new staging database (``StagingClaim.path``), configured like every connection."""
    try:
        con = duckdb.connect(str(path), config=dict(NO_NETWORK))
    except duckdb.Error as exc:
        raise IOFailure(f"cannot create the staging file {path}: {exc}",
                        {"path": str(path)}) from None
    _configure(con)
    return con


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
        # One attempt, never a wait: derived data is not worth delaying anyone, and while a
        # reader or writer has the file open the write is dropped (the next report recomputes).
        con = connect(path, create=False, wait=0)
    except UsagectlError:
        return
    try:
        for write in writes:
            write(con)
    except duckdb.Error:
        pass
    finally:
        con.close()


@contextmanager
def session(db: str | os.PathLike[str] | None = None, *, read_only: bool = False,
            wait: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """``with session(db) as con:`` — a connection closed however the block ends.

    Derived data a read-only session computed (``defer_write``) is stored when it closes.
    """
    con = connect(db, read_only=read_only, wait=wait)
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
