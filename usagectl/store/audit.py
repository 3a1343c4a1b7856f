"""The audit trail: ingests and their rejected rows (SPEC §3.3, §7)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb

from usagectl.errors import NotFoundError, UsageError
from usagectl.store.streaming import Columns, run_streamed

#: --limit and --offset are bound as 64-bit integers; beyond this they are refused.
MAX_ROWS = 2**62

INGEST_KEYS = ("id", "path", "sha256", "started_at", "finished_at", "status", "rows_read",
               "accepted", "duplicates", "rejected", "repaired", "error")
# Columns shown beyond the SPEC keys; JSON carries them too, after the SPEC keys.
INGEST_EXTRA_KEYS = ("format", "size_bytes", "conflicts", "blank_lines", "options",
                     "tool_version")
REJECT_KEYS = ("ingest_id", "path", "line", "reason", "raw")


def list_ingests(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every ingest attempt, oldest first; failed ones have ``accepted = 0`` and an error."""
    cols = INGEST_KEYS + INGEST_EXTRA_KEYS
    rows = con.execute(
        f"SELECT {', '.join(cols)} FROM ingests ORDER BY id").fetchall()  # fixed column list
    out = []
    for row in rows:
        d = dict(zip(cols, row))
        for k in ("started_at", "finished_at"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        if isinstance(d["options"], str):
            import json

            d["options"] = json.loads(d["options"])
        out.append(d)
    return out


def count_rejects(con: duckdb.DuckDBPyConnection, ingest_id: int | None = None) -> int:
    row = con.execute("SELECT count(*) FROM rejects WHERE ? IS NULL OR ingest_id = ?",
                      [ingest_id, ingest_id]).fetchone()
    return int(row[0]) if row else 0


def list_rejects(con: duckdb.DuckDBPyConnection, ingest_id: int | None = None,
                 limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """Rejected rows with file, line, reason and the raw record, in file order."""
    sql, params = _reject_query(con, ingest_id, limit, offset)
    return [dict(zip(REJECT_KEYS, r)) for r in con.execute(sql, params).fetchall()]


def stream_rejects(con: duckdb.DuckDBPyConnection, ingest_id: int | None = None,
                   limit: int | None = None, offset: int = 0, *, batch_size: int = 10_000,
                   columnar: bool = False) -> Iterator[dict[str, Any]]:
    """:func:`list_rejects`'s rows as an iterator fetching ``batch_size`` at a time (flat
    memory for millions of rejects; docs/cli.md "Streaming large outputs").

    The options are checked and the query run now; the rows are read from the connection's
    pending result as the iterator is consumed, so nothing else may run on ``con`` meanwhile.
    ``columnar``: read as Arrow record batches (:class:`usagectl.store.streaming.Batches`).
    """
    sql, params = _reject_query(con, ingest_id, limit, offset)
    return run_streamed(con, sql, params, lambda r: dict(zip(REJECT_KEYS, r)), batch_size,
                        columns=Columns(REJECT_KEYS) if columnar else None)


def _reject_query(con: duckdb.DuckDBPyConnection, ingest_id: int | None, limit: int | None,
                  offset: int) -> tuple[str, list[Any]]:
    """Check the options; the rejects query and its parameters."""
    for option, value in (("--limit", limit), ("--offset", offset)):
        if value is not None and not 0 <= value <= MAX_ROWS:
            raise UsageError(f"{option} must be >= 0 and <= {MAX_ROWS}, not {value}",
                             {"option": option, "value": value})
    if ingest_id is not None:
        found = con.execute("SELECT count(*) FROM ingests WHERE id = ?", [ingest_id]).fetchone()
        if not found or not found[0]:
            raise NotFoundError(f"no ingest #{ingest_id}; `usagectl ingests` lists them",
                                {"ingest_id": ingest_id})
    return ("SELECT r.ingest_id, i.path, r.line, r.reason, r.raw FROM rejects r "
            "JOIN ingests i ON i.id = r.ingest_id "
            "WHERE ? IS NULL OR r.ingest_id = ? "
            "ORDER BY r.ingest_id, r.line LIMIT ? OFFSET ?",
            [ingest_id, ingest_id, limit if limit is not None else 2**62, offset])


def reject_reasons(con: duckdb.DuckDBPyConnection, ingest_id: int, limit: int = 5
                   ) -> list[dict[str, Any]]:
    """The commonest reject reasons of one ingest, with how many rows and the first line."""
    rows = con.execute(
        "SELECT reason, count(*) AS n, min(line) AS first_line FROM rejects WHERE ingest_id = ? "
        "GROUP BY reason ORDER BY n DESC, first_line LIMIT ?", [ingest_id, limit]).fetchall()
    return [{"reason": r, "rows": n, "first_line": first} for r, n, first in rows]
