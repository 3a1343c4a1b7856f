"""Ingest: files → checked, deduplicated events, atomically per file (SPEC §3.3).

How every row is accounted for:

1. A short write transaction records the ingest ``running`` and claims its staging file
   (``usagectl.store.db.StagingClaim``); the database is closed again.
2. A reader (``usagectl.sources.readers``) yields every record of the file in bounded chunks;
   records it cannot split into values are yielded too, with a reason. Each chunk's geometries
   are parsed, reprojected and repaired with shapely; then one SQL statement types and checks
   every value and appends the chunk to a staging table in the ingest's own staging file beside
   the database (so memory stays flat, and the database is not held meanwhile). CSV/TSV
   and plain Parquet files usually skip the chunks: one statement reads, checks and stages
   the whole file in DuckDB (``_stage_csv_bulk``, ``_stage_parquet_bulk``).
3. One transaction, with the staging file attached read-only, classifies each valid row against
   the stored events and the earlier rows of the same file — *accepted*, *duplicate* (same
   ``(owner_id, event_id)``, same content) or *conflict* (same key, different content:
   rejected, the stored event is never replaced) — inserts the accepted events and the rejects,
   checks ``rows_read = accepted + duplicates + rejected``, and marks the ingest ``ok``.
   Anything that goes wrong rolls the whole file back.

A process killed mid-file leaves no event behind; the next writer finds its claim released,
marks that ingest ``failed`` and removes its staging file (docs/ingest.md "Locks").
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from usagectl import __version__
from usagectl.errors import (
    DatabaseLockedError,
    InternalError,
    IOFailure,
    UsageError,
    UsagectlError,
    ValidationError,
)
from usagectl.sources.columns import CANONICAL
from usagectl.sources.geometry import parse_crs, same_shape
from usagectl.sources.prepare import prepare_chunks, read_ahead
from usagectl.sources.readers import (
    CHUNK_ROWS,
    FORMATS,
    CsvLayout,
    CsvSource,
    JsonLinesSource,
    JsonlLayout,
    ParquetSource,
    Source,
    SourceStats,
    _RecordBatcher,
    _text,
    count_lines,
    has_map,
    is_supported,
    open_binary,
    open_source,
    read_failure,
    repeated_map_keys,
)
from usagectl.sources.routes import RAW_ENDPOINT_KEY, parse_routes, route_columns, route_fields
from usagectl.store import db

# Products whose successful `process` events are meaningless without a geometry (SPEC §2).
AREA_PRODUCTS = ("FIELDS_BOUNDARY", "OPERATIONS_FILE",
                 "SATELLITE_PROCESS_PLANET", "SATELLITE_PROCESS_SENTINEL")

ProgressCallback = Callable[[int, int], None]


@dataclass
class IngestOptions:
    """Options of one ``usagectl ingest`` run (SPEC §6)."""

    owner: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    crs: str | None = None
    tz: str = "UTC"
    product: str | None = None  # fills product where a row has none
    routes: list[str] = field(default_factory=list)  # --route templates, in order
    strict: bool = False
    format: str | None = None


@dataclass
class FileResult:
    """What happened to one file; ``to_dict`` gives the SPEC §7 ``ingest`` JSON object."""

    path: str
    sha256: str | None = None
    format: str | None = None
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    repaired: int = 0
    conflicts: int = 0
    blank_lines: int = 0
    seconds: float = 0.0
    ingest_id: int | None = None
    status: str = "ok"
    error: str | None = None
    error_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        d.pop("error_code")
        return d


# ------------------------------------------------------------------------------ path expansion


def expand_paths(paths: Iterable[str]) -> list[Path]:
    """Files named, files under folders (recursively, known formats only) and glob matches."""
    out: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(f for f in path.rglob("*")
                           if f.is_file() and not any(part.startswith(".") for part in
                                                      f.relative_to(path).parts)
                           and is_supported(f))
        elif path.exists():
            found = [path]
        elif any(ch in p for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(p, recursive=True)
                           if Path(f).is_file() and is_supported(Path(f)))
            if not found:
                raise IOFailure(f"no files match {p!r}")
        else:
            raise IOFailure(f"no such file or folder: {p}")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, streamed."""
    h = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
                size += len(block)
    except OSError as exc:
        raise IOFailure(f"{path}: cannot read: {exc.strerror}") from None
    return h.hexdigest(), size


# ------------------------------------------------------------------------------ SQL builders

# Matched against the time upper-cased (RFC 3339 §5.6 allows "t" and "z"; see ``u_ts``).
_OFFSET_TS = r"\d{4}-\d{1,2}-\d{1,2}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?\s?(Z|[+-]\d{2}(:?\d{2})?)"
_NAIVE_TS = r"\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"
_INT = r"[+-]?\d+(\.0*)?"
_NUM = r"[+-]?(\d+(\.\d*)?|\.\d+)"

# Bounds on one event's values (SPEC §5.4: sums are exact and never overflow). A sum meter
# adds values as DECIMAL(38, 9), which holds 29 integer digits; with at most 18 integer digits
# of credits (< 1e18) or 1e12 ms (~31 years) of response time per event, the sum of 10 billion
# (1e10) events stays below 1e28. Token counts are BIGINT: DuckDB sums them into a 128-bit
# HUGEINT (10 billion × 2⁶³ ≈ 9.2e28 < 1.7e38).
MAX_CREDIT_DIGITS = 18
MAX_RESPONSE_TIME_MS = 10**12

_TEXT_FIELDS = ("event_id", "owner_id", "user_id", "org_id", "product", "resource_id",
                "error_code", "endpoint", "method", "operation", "dataset_id", "session_id",
                "request_id")
_INT_FIELDS = ("input_tokens", "output_tokens", "thinking_tokens")
# Fields compared to tell a duplicate from a conflict, and hashed into content_hash.
_CONTENT_FIELDS = ("ts", "owner_id", "user_id", "org_id", "product", "action", "resource_id",
                   "status", "error_code", "endpoint", "method", "operation", "geometry",
                   "dataset_id", "indicator_ids", "input_tokens", "output_tokens",
                   "thinking_tokens", "credits", "response_time_ms", "session_id", "request_id")

# Columns of the staging table, in order; the events table adds succeeded/attributes etc.
_STAGE_COLUMNS = ("rownum", "line", "reason", "raw", "repaired", "event_id", "ts", "owner_id",
                  "user_id", "org_id", "product", "action", "resource_id", "status", "succeeded",
                  "error_code", "endpoint", "method", "operation", "geometry", "dataset_id",
                  "indicator_ids", "input_tokens", "output_tokens", "thinking_tokens", "credits",
                  "response_time_ms", "session_id", "request_id", "attributes", "content_hash")

_EVENT_COLUMNS = ("owner_id", "event_id", "ts", "user_id", "org_id", "product", "action",
                  "resource_id", "status", "succeeded", "error_code", "endpoint", "method",
                  "operation", "geometry", "dataset_id", "indicator_ids", "input_tokens",
                  "output_tokens", "thinking_tokens", "credits", "response_time_ms", "session_id",
                  "request_id", "attributes", "content_hash", "repaired")


def _as_text(col: str, typ: pa.DataType) -> str:
    """SQL turning a chunk column of any Arrow type into trimmed text, '' as NULL."""
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_struct(typ) \
            or pa.types.is_map(typ) or pa.types.is_fixed_size_list(typ):
        expr = f"CAST(to_json({col}) AS VARCHAR)"
    else:
        # Floats cast to their shortest exact text (12.0 → '12.0', 12.5 → '12.5').
        expr = f"CAST({col} AS VARCHAR)"
    return f"NULLIF(trim({expr}), '')"


def _stage_sql(table: str, schema: pa.Schema, extras: list[str], has_attributes: bool,
               raw_names: list[tuple[str, str]], route_fields: list[str],
               relation: str = "chunk") -> tuple[str, dict[str, Any]]:
    """The statement that types, checks and stages one chunk (identifiers are all generated).

    ``extras`` are original names of ``x_<n>`` columns and ``raw_names`` (name, column) pairs
    for rebuilding a raw record; both are bound as parameters, never formatted into SQL.
    ``route_fields`` (from a fixed list) are the fields the ``--route`` templates capture, in
    ``_r_<field>`` chunk columns (``usagectl.sources.routes``). ``relation`` is the SQL the
    chunk columns are read from (``chunk``, a registered Arrow table, or a generated
    subquery over a bulk-read CSV file); ``schema`` describes its columns.
    """
    params: dict[str, Any] = {}
    v = {c: _as_text("c_" + c, schema.field("c_" + c).type)
         for c in CANONICAL if c != "geometry"}
    if extras:
        pairs = []
        for i, name in enumerate(extras):
            params[f"xk{i}"] = name
            # An empty CSV cell is an absent value, as for canonical columns.
            pairs.append(f"$xk{i}, NULLIF(x_{i}, '')" if pa.types.is_string(schema.field(f"x_{i}").type)
                         else f"$xk{i}, x_{i}")
        present = " OR ".join(
            f"NULLIF(x_{i}, '') IS NOT NULL" if pa.types.is_string(schema.field(f"x_{i}").type)
            else f"x_{i} IS NOT NULL" for i in range(len(extras)))
        attributes = f"CASE WHEN {present} THEN json_object({', '.join(pairs)}) END"
    elif has_attributes:
        attributes = "CAST(_attributes AS JSON)"
    else:
        attributes = "CAST(NULL AS JSON)"
    if raw_names:
        rpairs = []
        for i, (name, col) in enumerate(raw_names):
            params[f"rk{i}"] = name
            rpairs.append(f"$rk{i}, {col}")
        raw_json = f"CAST(json_object({', '.join(rpairs)}) AS VARCHAR)"
    else:
        raw_json = "NULL"

    # The row's own values (as_given) and the values stored (content) differ where an ingest
    # option fills a field: --product, --route (and the endpoint reduced to its path). The
    # derived event_id hashes the row as given, so that re-ingesting a file with other options
    # finds the same events (a conflict naming the field, never a second copy).
    own = {c: v[c] for c in ("product", "endpoint", *route_fields)}
    for c in route_fields:
        v[c] = f"coalesce({v[c]}, _r_{c})"
    v["product"] = f"coalesce({v['product']}, $product)"
    v["endpoint"] = (f"CASE WHEN _r_endpoint IS NULL THEN {own['endpoint']} "
                     "ELSE NULLIF(trim(_r_endpoint), '') END")
    src_cols = ",\n        ".join([f"{expr} AS v_{c}" for c, expr in v.items()]
                                  + [f"{expr} AS own_{c}" for c, expr in own.items()])
    content = dict(_HASHED)
    as_given = {**_HASHED, **{c: f"own_{c}" for c in own}}
    as_given["indicator_ids"] = _list_sql("own_indicator_ids") if "indicator_ids" in own \
        else _HASHED["indicator_ids"]
    if "owner_id" in own:
        as_given["owner_id"] = "coalesce(own_owner_id, $owner)"
    route_reasons = "\n            ".join(_route_reason(c) for c in route_fields)
    sql = f"""
INSERT INTO {table}
WITH src AS (
    SELECT _line AS line, _raw AS raw_text, _pre_reason AS pre_reason,
        _geom AS geometry, _geom_reason AS geom_reason, _repaired AS repaired,
        {raw_json} AS raw_json,
        {src_cols},
        -- RFC 3339 allows a lower-case t and z; DuckDB reads only upper case. Upper-casing a
        -- time changes nothing else (digits and signs), and messages quote the value as given.
        upper({v['ts']}) AS u_ts,
        _r_raw AS r_raw, _r_route AS r_route, _r_reason AS r_reason,
        {", ".join(f"_r_{c} AS r_{c}" for c in route_fields) or "NULL AS r_none"},
        {attributes} AS own_attributes
    FROM {relation}
),
-- Each time test runs once per row (an ISO time with an offset never matches the naive form,
-- so the naive test runs only on the rest) and the naive cast once.
ts_kind AS (
    SELECT *, regexp_full_match(coalesce(u_ts, ''), '{_OFFSET_TS}') AS ts_is_offset FROM src
),
ts_naive AS (
    SELECT *, CASE WHEN ts_is_offset THEN false
                   ELSE regexp_full_match(coalesce(u_ts, ''), '{_NAIVE_TS}') END AS ts_is_naive
    FROM ts_kind
),
ts_cast AS (
    SELECT *, CASE WHEN ts_is_naive THEN TRY_CAST(u_ts AS TIMESTAMP) END AS ts_local
    FROM ts_naive
),
parsed AS (
    SELECT *,
        -- The URL as logged is kept when the stored endpoint differs from it (a file's own
        -- raw_endpoint column, if it has one, is left as it is).
        CASE WHEN r_raw IS NULL THEN own_attributes
             WHEN own_attributes IS NULL THEN json_object('{RAW_ENDPOINT_KEY}', r_raw)
             WHEN json_exists(own_attributes, '$.{RAW_ENDPOINT_KEY}') THEN own_attributes
             ELSE json_merge_patch(own_attributes, json_object('{RAW_ENDPOINT_KEY}', r_raw))
        END AS attributes,
        CASE
            WHEN u_ts IS NULL THEN NULL
            WHEN ts_is_offset THEN TRY_CAST(u_ts AS TIMESTAMPTZ)
            WHEN ts_is_naive THEN timezone($tz, ts_local)
            WHEN regexp_full_match(u_ts, '\\d{{10}}') THEN to_timestamp(TRY_CAST(u_ts AS BIGINT))
            WHEN regexp_full_match(u_ts, '\\d{{13}}')
                THEN timezone('UTC', make_timestamp(TRY_CAST(u_ts AS BIGINT) * 1000))
        END AS p_ts,
        ts_is_naive AND ts_local IS NOT NULL AND isfinite(ts_local)
            AND timezone($tz, timezone($tz, ts_local)) <> ts_local AS ts_in_gap,
        -- The UTC offset of an ISO 8601 time (DuckDB accepts +99:00 and moves the event 99 h).
        CASE WHEN ts_is_offset
             THEN NULLIF(regexp_extract(u_ts, '[+-]\\d{{2}}(:?\\d{{2}})?$'), '') END AS ts_offset,
        CAST(substr(ts_offset, 2, 2) AS INTEGER) AS ts_offset_hh,
        coalesce(TRY_CAST(NULLIF(right(replace(ts_offset, ':', ''), -3), '') AS INTEGER), 0)
            AS ts_offset_mm,
        CASE WHEN starts_with(ts_offset, '-') THEN -1 ELSE 1 END
            * (ts_offset_hh * 60 + ts_offset_mm) AS ts_offset_min,
        coalesce(v_owner_id, $owner) AS p_owner_id,
        CASE
            WHEN v_action IS NULL THEN 'process'
            WHEN lower(v_action) IN ('process', 'processed', 'create', 'created', 'update',
                                     'updated', 'upsert') THEN 'process'
            WHEN lower(v_action) IN ('delete', 'deleted', 'remove', 'removed') THEN 'delete'
        END AS p_action,
        CASE WHEN regexp_full_match(coalesce(v_status, ''), '\\d{{3}}(\\.0*)?')
             THEN split_part(v_status, '.', 1) ELSE v_status END AS p_status,
        {", ".join(f"CASE WHEN regexp_full_match(coalesce(v_{f}, ''), '{_INT}') THEN TRY_CAST(split_part(v_{f}, '.', 1) AS BIGINT) END AS p_{f}" for f in _INT_FIELDS)},
        CASE WHEN regexp_full_match(coalesce(v_credits, ''), '{_NUM}')
              AND length(rtrim(split_part(v_credits, '.', 2), '0')) <= 9
              AND length(ltrim(split_part(ltrim(v_credits, '+-'), '.', 1), '0')) <= {MAX_CREDIT_DIGITS}
             THEN TRY_CAST(v_credits AS DECIMAL(38, 9)) END AS p_credits,
        TRY_CAST(v_response_time_ms AS DOUBLE) AS p_response_time_ms,
        {_list_sql('v_indicator_ids')} AS p_indicator_ids
    FROM ts_cast
),
checked AS (
    SELECT *,
        CASE WHEN p_status IS NULL THEN true
             WHEN regexp_full_match(p_status, '\\d{{3}}') THEN CAST(p_status AS INTEGER) BETWEEN 200 AND 299
             ELSE lower(p_status) IN ('success', 'succeeded', 'ok', 'processed', 'true')
        END AS p_succeeded,
        CASE
            WHEN pre_reason IS NOT NULL THEN pre_reason
            {_control_reasons()}
            WHEN r_reason IS NOT NULL THEN r_reason
            {route_reasons}
            WHEN v_ts IS NULL THEN 'ts is empty: every event needs the time processing finished'
            WHEN ts_in_gap THEN format('timestamp {{}} does not exist in time zone {{}} (skipped by '
                 'a daylight-saving change); give an explicit offset such as +01:00', v_ts, $tz)
            WHEN ts_offset_min IS NOT NULL AND (ts_offset_hh > 23 OR ts_offset_mm > 59)
                THEN format('timestamp {{}} has offset {{}}, which is not a UTC offset (hours '
                     '00-23, minutes 00-59); fix the time at the source', v_ts, ts_offset)
            WHEN ts_offset_min IS NOT NULL AND ts_offset_min NOT BETWEEN -720 AND 840
                THEN format('timestamp {{}} has offset {{}}, outside the offsets real time zones '
                     'use (-12:00 to +14:00); check the clock settings of the system that wrote '
                     'it', v_ts, ts_offset)
            WHEN p_ts IS NULL AND regexp_matches(u_ts, '[T ]\\d{{1,2}}:\\d{{2}}:60')
                THEN format('timestamp {{}} is a leap second (:60); leap seconds are not '
                     'supported: write 23:59:59 (or the first second of the next minute)',
                     left(v_ts, 60))
            WHEN p_ts IS NULL OR NOT isfinite(p_ts) THEN format('timestamp {{}} could not be '
                 'parsed; use ISO 8601 such as 2026-03-01T14:05:00Z (naive times are read in '
                 '--tz, default UTC)', left(v_ts, 60))
            WHEN p_owner_id IS NULL THEN 'owner_id is empty: add it to the file or pass --owner'
            WHEN $owner IS NOT NULL AND v_owner_id IS NOT NULL AND v_owner_id <> $owner
                THEN format('owner_id {{}} differs from --owner {{}}; drop --owner or split the '
                            'file by owner', v_owner_id, $owner)
            WHEN v_user_id IS NULL THEN 'user_id is empty: every event needs the user who made it'
            WHEN v_product IS NULL AND (geometry IS NOT NULL OR geom_reason IS NOT NULL)
                THEN 'product is empty but the row has a geometry: an event with an area needs '
                     'its product (e.g. FIELDS_BOUNDARY); add a product column or pass --product'
            WHEN p_action IS NULL THEN format('action {{}} is not process or delete', left(v_action, 60))
            WHEN p_action = 'delete' AND v_resource_id IS NULL
                THEN 'a delete event needs resource_id (the boundary being deleted)'
            {" ".join(_int_reason(f) for f in _INT_FIELDS)}
            WHEN v_credits IS NOT NULL AND p_credits IS NULL THEN
                CASE WHEN NOT regexp_full_match(v_credits, '{_NUM}')
                         THEN format('credits {{}} is not a decimal number', left(v_credits, 60))
                     WHEN length(rtrim(split_part(v_credits, '.', 2), '0')) > 9
                         THEN format('credits {{}} has more than 9 decimal places; round it at the '
                                     'source', left(v_credits, 60))
                     ELSE format('credits {{}} has more than {MAX_CREDIT_DIGITS} integer digits: one '
                          'event carries at most 999999999999999999.999999999 credits, so that '
                          'the exact sum of 10 billion events still fits DECIMAL(38, 9); check '
                          'the value at the source', left(v_credits, 60)) END
            WHEN p_credits < 0 THEN format('credits {{}} is negative; usage cannot be negative '
                 '(send refunds to the billing system, not the usage log)', v_credits)
            WHEN v_response_time_ms IS NOT NULL AND (p_response_time_ms IS NULL
                 OR NOT isfinite(p_response_time_ms) OR p_response_time_ms < 0)
                THEN format('response_time_ms {{}} is not a non-negative number',
                            left(v_response_time_ms, 60))
            WHEN p_response_time_ms > {MAX_RESPONSE_TIME_MS}
                THEN format('response_time_ms {{}} is more than 1e12 ms (about 31 years): one '
                     'event carries at most 1e12, so that the exact sum of 10 billion events '
                     'still fits DECIMAL(38, 9); check the value and its unit at the source',
                     left(v_response_time_ms, 60))
            WHEN v_indicator_ids IS NOT NULL AND p_indicator_ids IS NULL
                THEN format('indicator_ids {{}} is not a list; write a JSON array or 964,897,962',
                            left(v_indicator_ids, 60))
            WHEN geom_reason IS NOT NULL THEN geom_reason
            WHEN geometry IS NULL AND p_action = 'process' AND v_product IN ({", ".join(f"'{p}'" for p in AREA_PRODUCTS)})
                 AND (p_status IS NULL OR (CASE WHEN regexp_full_match(p_status, '\\d{{3}}')
                      THEN CAST(p_status AS INTEGER) BETWEEN 200 AND 299
                      ELSE lower(p_status) IN ('success', 'succeeded', 'ok', 'processed', 'true') END))
                THEN format('{{}} event has no geometry; area products need a Polygon or '
                            'MultiPolygon (WKT, GeoJSON or WKB)', v_product)
        END AS reason
    FROM parsed
),
final AS (
    SELECT *,
        {_hash_sql(content)} AS p_hash,
        -- Only a row without an event_id needs its derived one (a CASE evaluates its THEN
        -- only on the rows that take it).
        CASE WHEN v_event_id IS NULL THEN {_hash_sql(as_given)} END AS id_hash
    FROM checked
)
SELECT line AS rownum, line, reason,
    CASE WHEN reason IS NOT NULL THEN coalesce(raw_text, raw_json) END AS raw,
    coalesce(repaired, false) AS repaired,
    coalesce(v_event_id, 'h-' || left(id_hash, 32)) AS event_id,
    p_ts, p_owner_id, v_user_id, v_org_id, v_product, p_action, v_resource_id, p_status,
    p_succeeded, v_error_code, v_endpoint, v_method, v_operation, geometry, v_dataset_id,
    CASE WHEN len(p_indicator_ids) > 0 THEN p_indicator_ids END,
    p_input_tokens, p_output_tokens, p_thinking_tokens, p_credits, p_response_time_ms,
    v_session_id, v_request_id, attributes, p_hash
FROM final
"""
    return sql, params


# The content hash: every content field after typing, in this order. Changing a name, an
# expression or the order changes every derived event_id (h-…) and would double stored events
# on re-ingest; tests/test_ingest_tolerance.py pins the definition with known hashes.
_HASHED: dict[str, str] = {
    "ts": "epoch_us(p_ts)", "owner_id": "p_owner_id", "user_id": "v_user_id",
    "org_id": "v_org_id", "product": "v_product", "action": "p_action",
    "resource_id": "v_resource_id", "status": "p_status", "error_code": "v_error_code",
    "endpoint": "v_endpoint", "method": "v_method", "operation": "v_operation",
    "geometry": "sha256(hex(geometry))", "dataset_id": "v_dataset_id",
    "indicator_ids": "p_indicator_ids", "input_tokens": "p_input_tokens",
    "output_tokens": "p_output_tokens", "thinking_tokens": "p_thinking_tokens",
    "credits": "CAST(p_credits AS VARCHAR)", "response_time_ms": "p_response_time_ms",
    "session_id": "v_session_id", "request_id": "v_request_id",
}


def _hash_sql(fields: dict[str, str]) -> str:
    """SQL for the SHA-256 of a row's typed content (the expressions are fixed SQL)."""
    return ("sha256(to_json(struct_pack("
            + ", ".join(f"{name} := {expr}" for name, expr in fields.items())
            + "))::VARCHAR)")


# Text fields checked for control characters (C0, DEL and C1: NUL, tab, escape, CSI …). An id
# is printable text; a control character in one is a producer's bug, and shown in a terminal
# or a spreadsheet it hides or rewrites what is displayed. Free text in attributes may hold any.
_ID_FIELDS = ("event_id", "owner_id", "user_id", "org_id", "product", "action", "resource_id",
              "status", "error_code", "endpoint", "method", "operation", "dataset_id",
              "indicator_ids", "session_id", "request_id")
_CONTROL = r"[\x00-\x1f\x7f-\x{9f}]"


def _control_reasons() -> str:
    """SQL ``WHEN`` branch rejecting a control character in any id field.

    The values checked are those stored (after --product and --route filled them), the endpoint
    as logged too (its query string is not stored), and the indicator ids after parsing (a JSON
    array may escape a NUL as \\u0000). One regular expression runs over all of them joined
    (no separator, so the join holds a control character exactly when one of them does); only
    on a hit (rare) does a nested ``CASE`` find the first field holding one, in the order
    listed, to name it."""
    columns = [("endpoint", "own_endpoint")] + [
        (c, "array_to_string(p_indicator_ids, ' ')" if c == "indicator_ids" else f"v_{c}")
        for c in _ID_FIELDS]
    out = []
    for name, col in columns:
        out.append(
            f"WHEN regexp_matches({col}, '{_CONTROL}') THEN format('{name} contains a control "
            f"character (U+{{}}); ids must be printable text: fix the value at the source', "
            f"printf('%04X', unicode(regexp_extract({col}, '{_CONTROL}'))))")
    joined = "concat(" + ", ".join(col for _, col in columns) + ")"
    return (f"WHEN regexp_matches({joined}, '{_CONTROL}') THEN CASE\n                "
            + "\n                ".join(out) + "\n            END")


def _list_sql(col: str) -> str:
    """SQL turning a list field's text (JSON array, or ``964,897,962``) into a list; NULL when
    the text is not a list (a reject reason)."""
    return f"""CASE
            WHEN {col} IS NULL THEN NULL
            WHEN starts_with({col}, '[') THEN
                CASE WHEN json_valid({col}) AND json_type({col}) = 'ARRAY'
                     THEN list_filter(list_transform(
                            from_json({col}, '["VARCHAR"]'), lambda x: trim(x)),
                          lambda x: x IS NOT NULL AND x <> '') END
            ELSE list_filter(list_transform(
                    regexp_split_to_array({col}, '[,;|]'), lambda x: trim(x)), lambda x: x <> '')
        END"""


def _route_reason(c: str) -> str:
    """A value a --route captured fills the field; a row holding another value is rejected."""
    differs = (f"list_sort({_list_sql('own_' + c)}) IS DISTINCT FROM list_sort({_list_sql('r_' + c)})"
               if c == "indicator_ids" else f"own_{c} <> r_{c}")
    return (f"WHEN own_{c} IS NOT NULL AND r_{c} IS NOT NULL AND {differs} THEN "
            f"format('{c} {{}} in the row differs from {{}} in its endpoint {{}} (--route {{}}); "
            "the row contradicts its own URL: fix the file, or drop that --route', "
            f"left(own_{c}, 60), left(r_{c}, 60), left(r_raw, 200), r_route)")


def _int_reason(f: str) -> str:
    return (
        f"WHEN v_{f} IS NOT NULL AND p_{f} IS NULL THEN "
        f"CASE WHEN regexp_full_match(v_{f}, '{_NUM}') AND NOT regexp_full_match(v_{f}, '{_INT}') "
        f"THEN format('{f} {{}} is not a whole number; token counts are integers', v_{f}) "
        f"WHEN regexp_full_match(v_{f}, '{_INT}') THEN format('{f} {{}} is too large', v_{f}) "
        f"ELSE format('{f} {{}} is not a number', left(v_{f}, 60)) END "
        f"WHEN p_{f} < 0 THEN format('{f} {{}} is negative; token counts cannot be negative', v_{f}) "
    )


def _differs(a: str, b: str) -> str:
    """SQL listing the content fields in which rows ``a`` and ``b`` differ."""
    parts = ", ".join(f"CASE WHEN {a}.{f} IS DISTINCT FROM {b}.{f} THEN '{f}' END"
                      for f in _CONTENT_FIELDS)
    return f"concat_ws(', ', {parts})"


# The staged row of a conflict, as the reject's raw record (geometry left out: it is binary).
_CONFLICT_RAW = ("CAST(to_json(struct_pack(" + ", ".join(
    f"{f} := s.{f}" for f in _STAGE_COLUMNS[5:] if f != "geometry") + ")) AS VARCHAR)")


def _conflict_rejects(stage: str, cls: str, outcome: str, join: str, reason: str) -> str:
    """SQL inserting the rejects of one kind of conflict; the other side is joined as given."""
    return f"""
INSERT INTO rejects
SELECT ?, s.line, {reason}, {_CONFLICT_RAW}
FROM {stage} s JOIN {cls} c USING (rownum)
{join}
WHERE c.outcome = '{outcome}'
ORDER BY s.rownum"""


# ------------------------------------------------------------------------------------ ingest


class _Interrupted(Exception):
    pass


class MainDatabase:
    """How an ingest reaches the main database (docs/ingest.md "Locks").

    Given a path, each short transaction opens the file read-write (waiting up to ``wait``
    seconds for another process's lock, see ``usagectl.store.db.connect``) and closes it again,
    so readers and other ingests run while a file is read and staged. Given an open connection
    (a library caller holding the file), that connection is used throughout.
    """

    def __init__(self, target: duckdb.DuckDBPyConnection | str | os.PathLike[str] | None,
                 wait: float | None = None) -> None:
        self.wait = wait
        if isinstance(target, duckdb.DuckDBPyConnection):
            self.con: duckdb.DuckDBPyConnection | None = target
            found = db._database_path(target)
            self.path = found.resolve() if found is not None else None
        else:
            self.con = None
            self.path = db.resolve_db_path(target).resolve()
            self.given = target

    @contextmanager
    def writing(self, wait: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection for one short piece of work."""
        if self.con is not None:
            yield self.con
            return
        con = db.connect(self.given, wait=self.wait if wait is None else wait)
        try:
            yield con
        finally:
            con.close()

    def staging_home(self) -> Path:
        """Where staging files go: beside the database (a temp folder for one in memory)."""
        if self.path is not None:
            return self.path
        return Path(tempfile.gettempdir()) / f"usagectl-{os.getpid()}.duckdb"


def ingest_paths(target: duckdb.DuckDBPyConnection | str | os.PathLike[str] | None,
                 paths: Iterable[str], options: IngestOptions,
                 progress: Callable[[Path, int], ProgressCallback] | None = None,
                 *, wait: float | None = None) -> list[FileResult]:
    """Ingest every file; a file that fails is recorded and the others still run.

    ``target`` is the database path (``--db``; opened only for short transactions, see
    :class:`MainDatabase`) or an open read-write connection.
    """
    options = check_options(options)
    main = MainDatabase(target, wait)
    with main.writing():
        pass  # the database opens (created, migrated, checked) before any file is read
    files = expand_paths(paths)
    if not files:
        raise IOFailure("no ingestible files found (known formats: .csv .tsv .parquet .geojson "
                        ".json .jsonl .ndjson, optionally .gz or .zst)")
    results = []
    for f in files:
        cb = progress(f, f.stat().st_size) if progress else None
        results.append(ingest_file(main, f, options, cb))
    return results


def check_options(options: IngestOptions) -> IngestOptions:
    """Check every option value before anything is read or written (SPEC §6): a bad ``--tz``,
    ``--crs``, ``--source-format`` or ``--route`` is a usage error (exit 2) saying what is valid.

    Returns the options with ``format`` lower-cased. ``--map`` is checked where it is parsed
    (:func:`usagectl.sources.columns.parse_mapping`). The time zone must be one DuckDB knows,
    not only Python: DuckDB reads the naive timestamps (the contracts loader applies the same
    rule to a contract's ``timezone``).
    """
    from usagectl.contracts.loader import zone_problem

    problem = zone_problem(options.tz)
    if problem is not None:
        raise UsageError(f"--tz: {problem}; use an IANA time zone name such as UTC, "
                         "America/Chicago or Asia/Kolkata",
                         {"option": "--tz", "value": options.tz})
    fmt = options.format.strip().lower() if options.format is not None else None
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--source-format {options.format!r} is not a format usagectl reads; "
                         f"choose one of {', '.join(FORMATS[:-1])} or {FORMATS[-1]}",
                         {"option": "--source-format", "value": options.format,
                          "valid": list(FORMATS)})
    try:
        parse_crs(options.crs)
    except ValidationError as exc:
        raise UsageError(exc.message, {"option": "--crs", "value": options.crs}) from None
    parse_routes(options.routes)
    return replace(options, format=fmt)


#: The staging table's name inside an ingest's staging file.
STAGE_TABLE = "staged"
#: The name the staging file is attached under, read-only, for the commit.
STAGE_SCHEMA = "ingest_stage"


def ingest_file(target: MainDatabase | duckdb.DuckDBPyConnection | str | os.PathLike[str] | None,
                path: Path, options: IngestOptions,
                progress: ProgressCallback | None = None) -> FileResult:
    """Ingest one file atomically; returns its result, recording failures instead of raising.

    Three steps, the database's write lock taken only in the first and the last
    (docs/ingest.md "Locks"): (1) a short transaction records the ingest as ``running`` and
    claims its staging file; (2) the file is read, typed and checked into that staging file
    with the database closed; (3) one transaction attaches the staging file read-only,
    classifies and inserts the rows and marks the ingest ``ok``.
    """
    main = target if isinstance(target, MainDatabase) else MainDatabase(target)
    started = time.monotonic()
    result = FileResult(path=str(path))
    opts = {"owner": options.owner, "map": options.mapping, "crs": options.crs, "tz": options.tz,
            "strict": options.strict, "format": options.format, "product": options.product,
            "routes": options.routes}
    try:
        with main.writing() as con:
            ingest_id = int(con.execute("SELECT nextval('ingest_id_seq')").fetchone()[0])  # type: ignore[index]
            claim = db.StagingClaim.take(main.staging_home(), ingest_id)
            try:
                con.execute(
                    "INSERT INTO ingests (id, path, started_at, status, options, tool_version) "
                    "VALUES (?, ?, ?, 'running', ?, ?)",
                    [ingest_id, str(path), datetime.now(UTC), json.dumps(opts), __version__])
            except BaseException:
                claim.release()
                raise
    except UsagectlError as exc:  # the database could not be opened (locked, say): not recorded
        result.status, result.error, result.error_code = "failed", exc.message, exc.code
        result.seconds = time.monotonic() - started
        return result
    result.ingest_id = ingest_id
    size: int | None = None
    committing = False
    try:
        result.sha256, size = file_digest(path)
        source = open_source(path, options.mapping, options.owner is not None, options.format)
        result.format = source.format  # known now, so that a failure below records it
        stage_con = db.staging_connect(claim.path)
        try:
            attempts = 0

            def stage() -> None:
                nonlocal source, attempts
                attempts += 1
                if attempts > 1:  # out of memory under the lower limit: read the file again
                    source = open_source(path, options.mapping, options.owner is not None,
                                         options.format)
                _stage_file(stage_con, source, STAGE_TABLE, options, progress, size)

            _within_ingest_memory(stage_con, stage)
        finally:
            stage_con.close()
        result.format = source.format  # reading may refine it (a .json array is "json")
        result.blank_lines = source.stats.blank_lines
        committing = True
        with main.writing() as con:
            con.execute("UPDATE ingests SET sha256 = ?, size_bytes = ? WHERE id = ?",
                        [result.sha256, size, ingest_id])
            con.execute(f"ATTACH ? AS {STAGE_SCHEMA} (READ_ONLY)", [str(claim.path)])
            try:
                commit = lambda: _commit(con, f"{STAGE_SCHEMA}.{STAGE_TABLE}",  # noqa: E731
                                         ingest_id, source, options, result)
                if main.con is None:  # our own connection: its limit is ours to set
                    _within_ingest_memory(con, commit)
                else:
                    commit()
            finally:
                con.execute(f"DETACH {STAGE_SCHEMA}")
    except UsagectlError as exc:
        message = exc.message
        if committing and isinstance(exc, DatabaseLockedError):
            message = (f"{path}: read and checked, but not committed: {exc.message} Nothing from "
                       "this file was stored; ingest it again")
        # Just waited the whole --wait for the lock: recording the failure tries once more only.
        _record_failure(main, ingest_id, result, message, exc.code, size,
                        wait=0 if isinstance(exc, DatabaseLockedError) else None)
    except (duckdb.Error, pa.ArrowException, OSError, ValueError) as exc:
        _record_failure(main, ingest_id, result, f"{path}: {type(exc).__name__}: {exc}",
                        "io_error" if isinstance(exc, OSError) else "internal_error", size)
    except KeyboardInterrupt:
        _record_failure(main, ingest_id, result, f"{path}: interrupted; nothing from this file "
                        "was stored", "interrupted", size, wait=0)
        raise
    except Exception as exc:  # a bug must not abort the other files nor leave 'running' rows
        _record_failure(main, ingest_id, result, f"{path}: internal error ({type(exc).__name__}: "
                        f"{exc}); nothing from this file was stored. This is a bug in usagectl "
                        f"{__version__}; please report it with the file", "internal_error", size)
    finally:
        claim.release()  # removes the staging file; a kill leaves it to the next writer
        result.seconds = time.monotonic() - started
    return result


#: DuckDB's memory limit while a file is staged and committed (the session's own, 1 GB, is
#: kept for reports). DuckDB fills its limit with cached blocks of the tables it writes, so the
#: limit sets the peak. Since the commit works in pieces of about COMMIT_PARTITION_ROWS rows
#: (no window or join over the whole file), nothing in an ingest needs more than this, and a
#: 10M-row CSV peaks at ~1.1x the RSS of a 1M-row one: docs/ingest.md "Memory and speed".
#: USAGECTL_MEMORY_LIMIT, when set, applies here too.
INGEST_MEMORY_LIMIT = "320MB"


def _within_ingest_memory(con: duckdb.DuckDBPyConnection, work: Callable[[], None]) -> None:
    """Run ``work`` under :data:`INGEST_MEMORY_LIMIT`; should an operator that cannot spill
    run out of memory there, run it again under the session's limit (the ingest then uses what
    it used before the lower limit, and never fails for it). ``work`` must be repeatable: the
    staging step rereads the file, the commit's transaction was rolled back."""
    if os.environ.get("USAGECTL_MEMORY_LIMIT"):
        work()
        return
    con.execute("SET memory_limit = ?", [INGEST_MEMORY_LIMIT])
    try:
        work()
    except duckdb.OutOfMemoryException:
        con.execute("SET memory_limit = ?", [db.DEFAULT_MEMORY_LIMIT])
        work()
    finally:
        try:
            con.execute("SET memory_limit = ?", [db.DEFAULT_MEMORY_LIMIT])
        except duckdb.Error:
            pass  # the connection is unusable; the error that made it so is on its way up


def _record_failure(main: MainDatabase, ingest_id: int, result: FileResult, message: str,
                    code: str, size: int | None, wait: float | None = None) -> None:
    result.status, result.error, result.error_code = "failed", message, code
    result.accepted = result.duplicates = result.repaired = 0
    try:
        with main.writing(wait) as con:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # no transaction was open
            con.execute(
                "UPDATE ingests SET status = 'failed', error = ?, finished_at = ?, format = ?, "
                "sha256 = coalesce(?, sha256), size_bytes = coalesce(?, size_bytes), "
                "rows_read = ?, accepted = 0, duplicates = 0, rejected = ?, conflicts = ?, "
                "repaired = 0, blank_lines = ? WHERE id = ?",
                [message, datetime.now(UTC), result.format, result.sha256, size,
                 result.rows_read, result.rejected, result.conflicts, result.blank_lines,
                 ingest_id])
    except (duckdb.Error, UsagectlError):
        # The connection broke (e.g. a failed COMMIT) or the database stayed locked. The ingest
        # row stays 'running' and the next writer marks it failed; nothing from the file was
        # stored.
        result.error = (f"{message} (the failure could not be recorded now; the next usagectl "
                        "command that writes will list this ingest as failed)")


def _create_stage(con: duckdb.DuckDBPyConnection, stage: str) -> None:
    """(Re)create the empty staging table ``stage``."""
    con.execute(f"DROP TABLE IF EXISTS {stage}")
    # Typed columns are the events table's (one list in usagectl.store.db): they never drift.
    columns = ["rownum BIGINT", "line BIGINT", "reason VARCHAR", "raw VARCHAR",
               "repaired BOOLEAN"] + [f"{c} {db.EVENT_TYPES[c]}" for c in _STAGE_COLUMNS[5:]]
    con.execute(f"CREATE TABLE {stage} ({', '.join(columns)})")  # names from fixed lists


def _stage_file(con: duckdb.DuckDBPyConnection, source: Source, stage: str,
                options: IngestOptions, progress: ProgressCallback | None, size: int,
                bulk: bool = True) -> None:
    """Read, check and stage every record of the file into ``stage`` on ``con``: the staging
    file's connection (the main database is not open meanwhile; see :func:`ingest_file`).

    A CSV/TSV file that :meth:`CsvSource.fast_scan` vouches for is read by DuckDB's
    ``read_csv`` in bulk (:func:`_stage_csv_bulk`), a plain Parquet file by ``read_parquet``
    (:func:`_stage_parquet_bulk`); every other file, any file a bulk path refuses, and every
    file when ``bulk`` is false, goes through the reader's chunks (for CSV: the exact splitter).
    """
    _create_stage(con, stage)
    stager = _ChunkStager(con, source, stage, options)
    if bulk and ((isinstance(source, CsvSource)
                  and _stage_csv_bulk(con, source, stage, options, stager))
                 or (isinstance(source, ParquetSource)
                     and _stage_parquet_bulk(con, source, stage, options, stager))
                 or (isinstance(source, JsonLinesSource)
                     and _stage_jsonl_bulk(con, source, stage, options, stager))):
        if progress:
            progress(size, size)
        return
    # Reading and geometry (Python, shapely) run one chunk ahead of the staging SQL (DuckDB,
    # which releases the GIL), so the two overlap on two cores.
    for chunk in read_ahead(prepare_chunks(source, stager.user_crs, stager.routes)):
        stager.stage_prepared(chunk)
        if progress:
            progress(source.bytes_consumed(), size)
    source.finish()
    if source.format in ("csv", "tsv"):
        _reconcile_lines(source)


class _ChunkStager:
    """Stages one Arrow chunk: geometries (shapely), --route columns, then one SQL statement."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: Source, stage: str,
                 options: IngestOptions) -> None:
        self.con, self.source, self.table, self.options = con, source, stage, options
        self.user_crs = parse_crs(options.crs)
        self.sql_cache: dict[pa.Schema, tuple[str, dict[str, Any]]] = {}
        self.routes = parse_routes(options.routes)
        self.captured = route_fields(self.routes)

    def stage(self, chunk: pa.Table) -> None:
        """Prepare (geometry, routes) and stage one chunk read outside ``source.chunks()``."""
        for ready in prepare_chunks(self.source, self.user_crs, self.routes, [chunk]):
            self.stage_prepared(ready)

    def stage_prepared(self, chunk: pa.Table) -> None:
        """Stage a chunk that already has its geometry and route columns."""
        source, con, options = self.source, self.con, self.options
        key = chunk.schema
        if key not in self.sql_cache:
            self.sql_cache[key] = _stage_sql(self.table, chunk.schema, source.extras,
                                             "_attributes" in chunk.schema.names,
                                             _raw_names(source), self.captured)
        sql, params = self.sql_cache[key]
        con.register("chunk", chunk)
        try:
            con.execute(sql, {**params, **_option_params(options)})
        finally:
            con.unregister("chunk")


def _option_params(options: IngestOptions) -> dict[str, Any]:
    return {"tz": options.tz, "owner": options.owner, "product": options.product}


# ------------------------------------------------------------------------ CSV in bulk (DuckDB)

_CSV_DELIMITERS = {",": ",", "\t": "\\t", ";": ";", "|": "|"}  # read_csv's spelling, fixed
_CSV_COMPRESSION = {None: "none", "gzip": "gzip", "zstd": "zstd"}
# read_csv's longest line (a longer one fails the bulk read: the exact splitter takes the file)
# and the buffer it parses in parallel, one per thread.
_CSV_MAX_LINE_BYTES = 4 * 1024 * 1024
_CSV_BUFFER_BYTES = 16 * 1024 * 1024


@contextmanager
def _file_order(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Keep insertion order for the statements inside (a bulk read's row ``i`` is the file's
    record ``i``), then put the session's setting back."""
    keep = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]  # type: ignore[index]
    con.execute("SET preserve_insertion_order = true")
    try:
        yield
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if keep else 'false'}")


def _stage_csv_bulk(con: duckdb.DuckDBPyConnection, source: CsvSource, stage: str,
                    options: IngestOptions, stager: _ChunkStager) -> bool:
    """Stage a CSV/TSV file read by DuckDB's ``read_csv`` in bulk; ``False`` (nothing staged)
    when the file must go to the exact splitter instead.

    1. :meth:`CsvSource.fast_scan` reads the raw bytes once: it parses the header, counts the
       physical lines (the independent count) and vouches that every line after the header is
       one record both parsers read alike.
    2. ``read_csv`` with a fixed dialect (the header's delimiter, ``"`` quoting), every column
       VARCHAR (nothing coerced, no sniffing), strict mode, no null padding, quoted empty
       strings kept as text; a parse error sends the file to the exact splitter. Insertion
       order is preserved for this statement (usagectl turns it off elsewhere), so row
       ``rowid`` of what it writes is the ``rowid``-th record of the file.
    3. When nothing needs Python (no geometry column, no ``--route``, no ``?``, ``#`` or ``://``
       anywhere in the file), ONE set-based statement reads, checks, types and stages every
       row (both cores). Otherwise the values land in a table beside the staging table
       (``<stage>_csv``) and go through the chunk pipeline in 50,000-row slices.
    4. Exactly one row per line after the header must have been read, otherwise the exact
       splitter reads the file. With no blank line (step 1) this proves that no record spans
       lines, so row ``rowid`` is line ``rowid + 2``.
    5. Rejected rows get their raw line from the file (one more pass, only if there are any).

    Regions (docs/ingest.md "Regions"): when step 1 could not vouch for some blocks of a plain
    file (not too many, see :data:`usagectl.sources.readers.REGION_MAX_SHARE`), the exact
    splitter reads just those regions (:meth:`CsvSource.region_chunks`) into a table beside the
    staging table, the header and the vouched lines are copied to a file beside the staging
    file for ``read_csv``, and each bulk row's line is mapped back to the file's own line
    before the regions' rows join the staging table.
    """
    layout = source.fast_scan()
    if layout is None:
        source.stats = SourceStats()
        return False
    return _with_spans_file(con, source, stage, "csv", lambda spans_file: _stage_csv_vouched(
        con, source, stage, options, stager, layout, spans_file))


def _with_spans_file(con: duckdb.DuckDBPyConnection, source: Source, stage: str, suffix: str,
                     work: Callable[[Path], bool]) -> bool:
    """Run a bulk path's ``work`` with the path of its spans file (the vouched lines of a
    file with regions, see :func:`_spans_path`); whatever happens, drop the spans table and
    file afterwards. ``False`` from ``work`` (the bulk path refused the file) leaves nothing
    staged and the source's counts reset, for the exact reader to read the whole file."""
    spans_file = _spans_path(con, suffix)
    try:
        staged = work(spans_file)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {stage}_spans")
        if spans_file.exists():
            spans_file.unlink()
    if not staged:
        con.execute(f"DELETE FROM {stage}")
        source.stats = SourceStats()
    return staged


def _spans_path(con: duckdb.DuckDBPyConnection, suffix: str) -> Path:
    """The file beside the staging file that holds the vouched lines of a file with regions,
    ``<staging file>.regions.<suffix>`` (its claim removes it with the staging file, should the
    process die)."""
    found = con.execute("SELECT path FROM duckdb_databases() "
                        "WHERE database_name = current_database()").fetchall()
    row = found[0] if found else None
    home = Path(row[0]) if row and row[0] else Path(tempfile.gettempdir()) / f"usagectl-{os.getpid()}"
    return home.with_name(f"{home.name}.regions.{suffix}")


def _stage_region_rows(con: duckdb.DuckDBPyConnection, source: CsvSource | JsonLinesSource,
                       stage: str, stager: _ChunkStager, layout: CsvLayout | JsonlLayout) -> int:
    """Stage the records of the regions of ``layout`` (the exact reader's, each with its own
    line) through the chunk pipeline; they go in before the bulk rows, whose lines the bulk
    statement maps back through the spans table. Returns how many rows the regions staged."""
    for chunk in read_ahead(prepare_chunks(source, stager.user_crs, stager.routes,
                                           source.region_chunks(layout))):
        stager.stage_prepared(chunk)
    return int(con.execute(f"SELECT count(*) FROM {stage}").fetchone()[0])  # type: ignore[index]


def _create_spans_table(con: duckdb.DuckDBPyConnection, stage: str,
                        spans: list[tuple[int, int, int, int]]) -> int:
    """``<stage>_spans``: bulk row ``j`` (0-based, in the order of the spans file) is line
    ``j + delta`` of the file for ``j`` in ``[lo, hi]``. Returns the number of vouched lines."""
    j, rows = 0, []
    for first, end, _, _ in spans:
        rows.append((j, j + end - first - 1, first - j))
        j += end - first
    con.execute(f"CREATE TABLE {stage}_spans (lo BIGINT, hi BIGINT, delta BIGINT)")
    if rows:
        con.executemany(f"INSERT INTO {stage}_spans VALUES (?, ?, ?)", rows)
    return j


def _stage_csv_vouched(con: duckdb.DuckDBPyConnection, source: CsvSource, stage: str,
                       options: IngestOptions, stager: _ChunkStager, layout: CsvLayout,
                       spans_file: Path) -> bool:
    """Steps 2-5 of :func:`_stage_csv_bulk`; ``False`` when the bulk read refused the lines."""
    spans_table = f"{stage}_spans"
    path = source.path
    expected = layout.lines - 1
    ahead = 0  # rows staged before the bulk rows (the regions')
    if layout.runs:
        # The regions' rows are staged first, then the bulk rows (each with its file line).
        ahead = _stage_region_rows(con, source, stage, stager, layout)
        path = spans_file
        source.write_spans(layout, path)
        expected = _create_spans_table(con, stage, layout.spans)
    names = [f"h{i}" for i in range(len(layout.header))]  # generated identifiers
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    reader = (f"read_csv($path, delim = '{_CSV_DELIMITERS[layout.delimiter]}', quote = '\"', "
              f"escape = '\"', header = false, skip = 1, columns = {columns}, "
              "auto_detect = false, strict_mode = true, null_padding = false, "
              "allow_quoted_nulls = false, "
              f"compression = '{_CSV_COMPRESSION[source.compression]}', "
              f"max_line_size = {int(_CSV_MAX_LINE_BYTES)}, "
              f"buffer_size = {int(_CSV_BUFFER_BYTES)}, encoding = 'utf-8')")
    index = {h: i for i, h in enumerate(layout.header)}
    select = []
    for c in CANONICAL:
        src = layout.plan.canonical.get(c)
        select.append(f"{names[index[src]]} AS c_{c}" if src else f"CAST(NULL AS VARCHAR) AS c_{c}")
    select += [f"{names[index[e]]} AS x_{i}" for i, e in enumerate(layout.plan.extras)]
    direct = not ("geometry" in layout.plan.canonical or stager.routes
                  or (layout.url_like and "endpoint" in layout.plan.canonical))
    raw_table = f"{stage}_csv"
    line, join = "r.rowid + 2", ""
    if layout.runs:
        line, join = "r.rowid + s.delta", f"JOIN {spans_table} s ON r.rowid BETWEEN s.lo AND s.hi"
    try:
        # Only this copy keeps file order (row ``rowid`` of the table is the ``rowid``-th line
        # read); the typing and checks below carry each row's line with it and run unordered.
        # Order costs memory: DuckDB holds back batches that finish early, and under the
        # ingest's memory limit it serialises a heavy ordered statement (docs/ingest.md).
        con.execute(f"DROP TABLE IF EXISTS {raw_table}")
        with _file_order(con):
            con.execute(f"CREATE TABLE {raw_table} AS SELECT * FROM {reader}",
                        {"path": str(path)})
        counted = con.execute(f"SELECT count(*) FROM {raw_table}").fetchall()[0][0]
    except duckdb.Error:
        counted = -1
    rows = int(counted)
    try:
        if rows != expected:
            return False
        if direct:
            sql, params = _stage_sql(stage, _bulk_schema(len(layout.plan.extras)), source.extras,
                                     False, [], [], relation=_bulk_relation(
                                         select, f"{raw_table} r {join}", line))
            try:
                con.execute(sql, {**params, **_option_params(options)})
            except duckdb.Error:
                return False
            staged = con.execute(f"SELECT count(*) FROM {stage}").fetchall()[0][0] - ahead
            if staged != rows:
                return False
        else:
            for lo in range(0, rows, CHUNK_ROWS):
                chunk = con.sql(
                    f"SELECT {', '.join(select)}, CAST({line} AS BIGINT) AS _line, "
                    f"CAST(NULL AS VARCHAR) AS _raw, CAST(NULL AS VARCHAR) AS _pre_reason "
                    f"FROM {raw_table} r {join} WHERE r.rowid >= $lo AND r.rowid < $hi "
                    "ORDER BY r.rowid",
                    params={"lo": lo, "hi": lo + CHUNK_ROWS}).to_arrow_table()
                stager.stage(chunk)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {raw_table}")
    st = source.stats
    st.header_lines, st.records, st.physical_lines = 1, rows, layout.lines
    st.blank_lines = st.continuation_lines = 0
    if layout.tally is not None:
        tally = layout.tally
        st.records += tally.records
        st.blank_lines, st.continuation_lines = tally.blank_lines, tally.continuation_lines
        # Each line is the header, a vouched line or a region's: a region's lines must be its
        # records, blank and continuation lines (checked by _reconcile_lines below).
        st.physical_lines = 1 + rows + tally.lines
    source.independent_lines = layout.lines
    _fill_raw(con, source, stage)
    _reconcile_lines(source)
    return True


# ---------------------------------------------------------------- JSON Lines in bulk (DuckDB)

_JSON_COMPRESSION = {None: "none", "gzip": "gzip", "zstd": "zstd"}
_JSON_MAX_OBJECT_BYTES = 16 * 1024 * 1024
# Distinct key sequences (each its own column plan, a branch of every CASE) a bulk read takes;
# a file with more goes to the Python reader. Key names must be plain to be found in a line.
_JSON_MAX_SEQUENCES = 64
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.\-]+")
# JSON types whose text json_extract_string gives exactly as Python's reader does.
_JSON_SAME_TEXT = ("VARCHAR", "BOOLEAN", "BIGINT", "UBIGINT")
# A number's text as written, found in the line by its (plain) key; exponent forms are not
# matched (Python writes 1e3 as 1000), so they fail the statement (see _stage_jsonl_bulk).
_PLAIN_NUMBER = r"(-?[0-9]+(?:\.[0-9]+)?)"
# A list DuckDB and Python's json.dumps write alike: integers and printable ASCII
# strings without a quote or backslash (e.g. indicator_ids as a JSON array).
_ITEM = r'(0|-?[1-9][0-9]*|"[ !#-\[\]-~]*")'
_PLAIN_LIST = rf"\[({_ITEM}(,{_ITEM})*)?\]"


def _stage_jsonl_bulk(con: duckdb.DuckDBPyConnection, source: JsonLinesSource, stage: str,
                      options: IngestOptions, stager: _ChunkStager) -> bool:
    """Stage a JSON Lines file read by DuckDB's ``read_ndjson_objects`` in ONE set-based
    statement; ``False`` (nothing staged) when the file must go to :meth:`JsonLinesSource.chunks`.

    1. :meth:`JsonLinesSource.fast_scan` vouches for the bytes (one object per line, nothing
       the two JSON parsers read differently) and counts the lines. A first, cheap DuckDB
       pass lists the distinct key sequences (at most ``_JSON_MAX_SEQUENCES``, plain key
       names, no key twice: Python keeps a duplicate key's last value, DuckDB its first);
       each gets the column plan Python's reader would give it.
    2. Each line comes as its raw JSON text; the values of all known keys are extracted in one
       parse per line (``json_extract`` with a list of paths), never type-inferred: strings,
       booleans and integers (any size) are the text Python's reader gives. A decimal number
       is taken as written from the line (``42.5730`` stays ``42.5730``) by a pattern on its
       key, which must occur once in the line. Anything else the statement cannot reproduce
       exactly (an exponent or NaN, a decimal attribute outside the range both serialisers
       write alike, a nested value other than a list of integers and plain ASCII strings)
       raises an error inside the statement, and the whole file goes to Python instead.
    3. Exactly one row per line must have been read; insertion order is kept for the
       statement, so row ``rowid`` is line ``rowid + 1``. Rejects get their raw line from the
       file afterwards (:func:`_fill_raw`).

    Geometry, ``--route`` and URL-like endpoints need Python per chunk: such files take the
    chunk pipeline as before.

    Regions (docs/ingest.md "Regions"): when step 1 could not vouch for some lines of a plain
    file (not too many, see :data:`usagectl.sources.readers.REGION_MAX_SHARE`), the vouched
    lines are copied to a file beside the staging file, steps 1-3 read that copy, the Python
    reader reads just the other lines (:meth:`JsonLinesSource.region_chunks`; their rows are
    staged first), and each bulk row's line is mapped back to the file's own line, as for CSV.
    """
    if stager.routes:
        return False
    layout = source.fast_scan()
    if layout is None:
        source.stats = SourceStats()
        return False
    return _with_spans_file(con, source, stage, "jsonl", lambda spans_file: _stage_jsonl_vouched(
        con, source, stage, options, stager, layout, spans_file))


def _stage_jsonl_vouched(con: duckdb.DuckDBPyConnection, source: JsonLinesSource, stage: str,
                         options: IngestOptions, stager: _ChunkStager, layout: JsonlLayout,
                         spans_file: Path) -> bool:
    """Steps 1-3 of :func:`_stage_jsonl_bulk` after the byte scan; ``False`` when the bulk
    statement refused the vouched lines (nothing staged then, see :func:`_with_spans_file`)."""
    path, compression = source.path, source.compression
    if layout.runs:  # regions: the bulk statement reads a copy of the vouched lines
        source.write_spans(layout, spans_file)
        path, compression = spans_file, None
    reader = (f"read_ndjson_objects($path, compression = "
              f"'{_JSON_COMPRESSION[compression]}', "
              f"maximum_object_size = {int(_JSON_MAX_OBJECT_BYTES)})")
    raw_table = f"{stage}_jsonl"
    try:
        return _stage_jsonl_objects(con, source, stage, options, stager, layout, path, reader,
                                    raw_table)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {raw_table}")


def _stage_jsonl_objects(con: duckdb.DuckDBPyConnection, source: JsonLinesSource, stage: str,
                         options: IngestOptions, stager: _ChunkStager, layout: JsonlLayout,
                         path: Path, reader: str, raw_table: str) -> bool:
    """:func:`_stage_jsonl_vouched` once the reader is known: copy the objects in file order
    into ``raw_table`` (row ``rowid`` is the ``rowid``-th vouched line), then type and check
    them in one statement that carries each row's line and runs unordered (as for CSV)."""
    try:
        con.execute(f"DROP TABLE IF EXISTS {raw_table}")
        with _file_order(con):
            con.execute(f"CREATE TABLE {raw_table} AS SELECT json FROM {reader}",
                        {"path": str(path)})
        found = con.execute(f"SELECT DISTINCT json_keys(json) FROM {raw_table} "
                            f"LIMIT {_JSON_MAX_SEQUENCES + 1}").fetchall()
    except duckdb.Error:
        found = []
    sequences = sorted(tuple(row[0]) for row in found)
    if not sequences or len(sequences) > _JSON_MAX_SEQUENCES \
            or any(len(set(seq)) != len(seq) for seq in sequences) \
            or not all(_PLAIN_KEY.fullmatch(k) for seq in sequences for k in seq):
        return False
    planner = _RecordBatcher(source)
    plans = [planner._plan(keys) for keys in sequences]
    fed_all = {c for fed, _, reason in plans if reason is None for c in fed}
    if "geometry" in fed_all or (layout.url_like and "endpoint" in fed_all):
        return False
    ahead, expected = 0, layout.lines
    if layout.runs:
        # The regions' rows are staged first, then the bulk rows (each with its file line).
        ahead = _stage_region_rows(con, source, stage, stager, layout)
        expected = _create_spans_table(con, stage, layout.spans)
    keys = sorted({k for seq in sequences for k in seq})
    slot = {k: i + 1 for i, k in enumerate(keys)}  # 1-based list positions
    params: dict[str, Any] = {
        "seqs": ["\x01".join(seq) for seq in sequences],
        "plain_list": _PLAIN_LIST,
        "paths": ["$." + k if k.replace("_", "a").isalnum() else f'$."{k}"' for k in keys],
    }

    def value(k: str, extra: bool) -> str:
        """SQL for the text of key ``k``'s value (canonical), or its JSON (``extra``)."""
        i = slot[k]
        pat = "[{,][ \t]*\"" + re.escape(k) + "\"[ \t]*:"
        params[f"kp{i}"] = pat
        params[f"vp{i}"] = pat + "[ \t]*" + _PLAIN_NUMBER + "[ \t]*[,}]"
        v, t = f"vals[{i}]", f"json_type(vals[{i}])"
        number = (f"CASE WHEN len(regexp_extract_all(line, $kp{i})) = 1 "
                  f"THEN NULLIF(regexp_extract(line, $vp{i}, 1), '') END")
        fail = "error('jsonl bulk: value not reproducible')"
        plain_list = f"{t} = 'ARRAY' AND regexp_full_match(CAST({v} AS VARCHAR), $plain_list)"
        if not extra:
            return (f"CASE WHEN {t} = 'NULL' THEN NULL "
                    f"WHEN {t} IN {_JSON_SAME_TEXT} THEN NULLIF(json_extract_string({v}, '$'), '') "
                    f"WHEN {t} = 'DOUBLE' THEN coalesce({number}, {fail}) "
                    f"WHEN {plain_list} THEN CAST({v} AS VARCHAR) ELSE {fail} END")
        # Python writes an attribute's decimal as a float (repr); DuckDB writes the same
        # digits in plain notation, which repr uses between 1e-4 and 1e16.
        return (f"CASE WHEN {t} IN ('NULL', {', '.join(map(repr, _JSON_SAME_TEXT))}) THEN {v} "
                f"WHEN {t} = 'DOUBLE' AND contains(coalesce({number}, ''), '.') "
                f"AND (abs(CAST({v} AS DOUBLE)) = 0 OR abs(CAST({v} AS DOUBLE)) "
                f"BETWEEN 1e-4 AND 9.999999999999999e15) THEN {v} "
                f"WHEN {plain_list} THEN {v} ELSE {fail} END")

    canon: dict[str, list[str]] = {c: [] for c in CANONICAL}
    attrs, reasons = [], []
    for n, (fed, extras, reason) in enumerate(plans):
        when = f"WHEN {n + 1} THEN "
        if reason is not None:
            params[f"reason{n}"] = reason
            reasons.append(when + f"$reason{n}")
            continue
        for c, k in fed.items():
            canon[c].append(when + value(k, False))
        if extras:
            pairs = []
            for j, k in enumerate(extras):
                params[f"an{n}_{j}"] = k
                pairs.append(f"$an{n}_{j}, {value(k, True)}")
            attrs.append(when + f"CAST(json_object({', '.join(pairs)}) AS VARCHAR)")
    select = [f"CASE seq {' '.join(w)} END AS c_{c}" if w else f"CAST(NULL AS VARCHAR) AS c_{c}"
              for c, w in canon.items()]
    select.append(f"CASE seq {' '.join(attrs)} END AS _attributes" if attrs
                  else "CAST(NULL AS VARCHAR) AS _attributes")
    reason_sql = f"CASE seq {' '.join(reasons)} END" if reasons else "CAST(NULL AS VARCHAR)"
    line, join = "r._rid + 1", ""
    if layout.runs:
        line, join = "r._rid + s.delta", f"JOIN {stage}_spans s ON r._rid BETWEEN s.lo AND s.hi"
    relation = (
        f"(SELECT {', '.join(select)}, CAST({line} AS BIGINT) AS _line, "
        "CAST(NULL AS VARCHAR) AS _raw, "
        f"CASE WHEN seq = 0 THEN error('jsonl bulk: a key sequence not listed') "
        f"ELSE {reason_sql} END AS _pre_reason, "
        "CAST(NULL AS BLOB) AS _geom, CAST(NULL AS VARCHAR) AS _geom_reason, "
        "CAST(NULL AS BOOLEAN) AS _repaired, CAST(NULL AS VARCHAR) AS _r_endpoint, "
        "CAST(NULL AS VARCHAR) AS _r_raw, CAST(NULL AS VARCHAR) AS _r_route, "
        "CAST(NULL AS VARCHAR) AS _r_reason "
        "FROM (SELECT CAST(json AS VARCHAR) AS line, "
        "coalesce(list_position($seqs, array_to_string(json_keys(json), chr(1))), 0) AS seq, "
        f"r.rowid AS _rid, json_extract(json, $paths) AS vals FROM {raw_table} r) r {join}) AS chunk")
    schema = _bulk_schema(0).append(pa.field("_attributes", pa.string()))
    sql, stage_params = _stage_sql(stage, schema, [], True, [], [], relation=relation)
    rows = -1
    try:
        rows = int(con.execute(f"SELECT count(*) FROM {raw_table}").fetchall()[0][0])
        if rows != expected:
            return False
        con.execute(sql, {**stage_params, **params, **_option_params(options)})
        counted = con.execute(f"SELECT count(*) FROM {stage}").fetchall()[0][0] - ahead
    except duckdb.Error:
        counted = -1
    if counted != rows:
        return False
    st = source.stats
    st.records, st.physical_lines = rows, rows
    st.blank_lines = st.header_lines = st.continuation_lines = 0
    if layout.tally is not None:
        # Each line is a vouched line (one bulk row each) or a region's: a region's lines (the
        # scan's count) must be its records and blank lines (checked by _reconcile_lines).
        st.records += layout.tally.records
        st.blank_lines = layout.tally.blank_lines
        st.physical_lines += layout.tally.lines
    st.seen_canonical |= fed_all  # the regions' records added theirs
    source.independent_lines = layout.lines
    _fill_raw(con, source, stage)
    _reconcile_lines(source)
    source.finish()
    return True


def _bulk_schema(n_extras: int, types: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """The columns of :func:`_bulk_relation`, for :func:`_stage_sql`: text unless ``types``
    gives a ``c_``/``x_`` column's Arrow type."""
    types = types or {}
    fields = [pa.field(f"c_{c}", types.get(f"c_{c}", pa.string())) for c in CANONICAL]
    fields += [pa.field(f"x_{i}", types.get(f"x_{i}", pa.string())) for i in range(n_extras)]
    fields += [pa.field(n, t) for n, t in (
        ("_line", pa.int64()), ("_raw", pa.string()), ("_pre_reason", pa.string()),
        ("_geom", pa.binary()), ("_geom_reason", pa.string()), ("_repaired", pa.bool_()),
        ("_r_endpoint", pa.string()), ("_r_raw", pa.string()), ("_r_route", pa.string()),
        ("_r_reason", pa.string()))]
    return pa.schema(fields)


def _bulk_relation(select: list[str], reader: str, line: str = "NULL") -> str:
    """The chunk columns straight from a bulk reader; ``line`` is the SQL of ``_line`` (for
    CSV, NULL: lines are numbered after staging)."""
    return (f"(SELECT {', '.join(select)}, CAST({line} AS BIGINT) AS _line, "
            "CAST(NULL AS VARCHAR) AS _raw, CAST(NULL AS VARCHAR) AS _pre_reason, "
            "CAST(NULL AS BLOB) AS _geom, CAST(NULL AS VARCHAR) AS _geom_reason, "
            "CAST(NULL AS BOOLEAN) AS _repaired, CAST(NULL AS VARCHAR) AS _r_endpoint, "
            "CAST(NULL AS VARCHAR) AS _r_raw, CAST(NULL AS VARCHAR) AS _r_route, "
            f"CAST(NULL AS VARCHAR) AS _r_reason FROM {reader}) AS chunk")


# -------------------------------------------------------------------- Parquet in bulk (DuckDB)

_GLOB_CHARS = frozenset("*?[]{}")  # read_parquet would take such a path as a pattern


def _parquet_bulk_type(t: pa.DataType) -> bool:
    """Arrow types the Parquet bulk path is proven on (tests/test_ingest_parquet_bulk.py
    stages generated files of each both ways); any other column sends the file to the chunks."""
    if pa.types.is_dictionary(t):
        return pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _parquet_bulk_type(t.value_type)
    if pa.types.is_struct(t):
        return t.num_fields > 0 and all(_parquet_bulk_type(t.field(i).type)
                                        for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _parquet_bulk_type(t.key_type) and _parquet_bulk_type(t.item_type)
    return (pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_integer(t)
            or pa.types.is_float32(t) or pa.types.is_float64(t) or pa.types.is_decimal128(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_date32(t) or pa.types.is_timestamp(t) or pa.types.is_time64(t))


def _stage_parquet_bulk(con: duckdb.DuckDBPyConnection, source: ParquetSource, stage: str,
                        options: IngestOptions, stager: _ChunkStager) -> bool:
    """Stage a plain Parquet file read by DuckDB's ``read_parquet`` in ONE statement; ``False``
    (nothing staged) when the file must go through the reader's chunks instead.

    The statement is :func:`_stage_sql` itself, over a relation with the chunk columns the
    reader would build: each file column selected by position (the file's names never enter
    the SQL), absent columns as typed NULLs, ``_line`` = ``file_row_number + 1`` (the chunks'
    1-based row number), and the SQL built from the same Arrow schema the chunks carry. So
    every value, reason, raw text, line and hash equals the chunk path's, as long as DuckDB
    sees each column with the same type both ways; that is checked first, column by column,
    and anything else falls back (whole file):

    - a geometry column or a CRS in the file (GeoParquet), or ``--route``;
    - a map (at any depth) that holds a key twice: that row is a reject, decided by the chunks
      (:func:`usagectl.sources.readers.repeated_map_keys`; only files with maps are scanned);
    - an endpoint with a URL in it (``?``, ``#``, ``://``: the chunks reduce it to its path
      in Python); checked by the same function the chunks use, over that column only;
    - a column whose Arrow type is not among :func:`_parquet_bulk_type`, or that
      ``read_parquet`` types differently from the Arrow chunk (``timestamp[ms]``, durations,
      fixed-size lists), names DuckDB sees otherwise (two names differing only in case, a
      column called ``file_row_number``), a path with glob characters;
    - any DuckDB error, or a row count other than the footer's.
    """
    plan, schema = source.plan, source.schema
    if "geometry" in plan.canonical or source.declared_crs is not None or stager.routes:
        return False
    path = os.path.abspath(source.path)
    if _GLOB_CHARS & set(path):
        return False
    names = list(schema.names)
    used = list(dict.fromkeys([*plan.canonical.values(), *plan.extras]))
    if len(set(names)) != len(names) or not all(
            _parquet_bulk_type(schema.field(n).type) for n in used):
        return False
    for name in used:  # a map repeating a key is a reject, which the reader's chunks decide
        if has_map(schema.field(name).type) and any(
                repeated_map_keys(column) for column in source.column_batches(name)):
            return False
    endpoint = plan.canonical.get("endpoint")
    if endpoint is not None:
        for column in source.column_batches(endpoint):
            if any(a.null_count != len(a) for a in route_columns(column, []).values()):
                return False
    position = {n: i for i, n in enumerate(names)}
    args = ("$path, file_row_number = true, hive_partitioning = false, "
            "binary_as_string = false")
    try:
        probe = con.sql(f"SELECT * FROM read_parquet({args}) LIMIT 0", params={"path": path})
        if probe.columns != [*names, "file_row_number"]:
            return False
        chunk_types = pa.schema([pa.field(f"p{position[n]}", schema.field(n).type)
                                 for n in used]).empty_table()
        con.register("parquet_bulk_types", chunk_types)
        try:
            arrow_types = con.sql("SELECT * FROM parquet_bulk_types").types
        finally:
            con.unregister("parquet_bulk_types")
        if any(str(probe.types[position[n]]) != str(t) for n, t in zip(used, arrow_types)):
            return False
    except (duckdb.Error, pa.ArrowException):
        return False
    aliases = [f"p{i}" for i in range(len(names))] + ["rn"]  # generated identifiers
    reader = f"read_parquet({args}) AS pq({', '.join(aliases)})"
    select, types = [], {}
    for c in CANONICAL:
        src = plan.canonical.get(c)
        if src is None:
            select.append(f"CAST(NULL AS VARCHAR) AS c_{c}")
        else:
            select.append(f"p{position[src]} AS c_{c}")
            types[f"c_{c}"] = schema.field(src).type
    for i, e in enumerate(plan.extras):
        select.append(f"p{position[e]} AS x_{i}")
        types[f"x_{i}"] = schema.field(e).type
    sql, params = _stage_sql(stage, _bulk_schema(len(plan.extras), types), source.extras, False,
                             _raw_names(source), [], relation=_bulk_relation(select, reader, "rn + 1"))
    # Each row carries its line (``file_row_number``), so the statement runs unordered: DuckDB
    # keeps insertion order only by holding back batches, which under the ingest's memory
    # limit serialises the statement (docs/ingest.md). The staging table equals the chunks'
    # row for row by rownum.
    try:
        con.execute(sql, {**params, **_option_params(options), "path": path})
        counted = int(con.execute(f"SELECT count(*) FROM {stage}").fetchall()[0][0])
    except duckdb.Error:
        counted = -1
    if counted != source.expected_rows:
        con.execute(f"DELETE FROM {stage}")
        return False
    source.stats.records = counted
    source.finish()
    return True


_RAW_WINDOW = 1_000_000  # lines whose rejects are looked up at a time (bounds memory)


def _fill_raw(con: duckdb.DuckDBPyConnection, source: Source, stage: str) -> None:
    """Give each rejected row of a bulk-read CSV or JSON Lines file its line as written (the
    reject's raw text), exactly as the exact splitter or the JSON Lines reader keeps it. One pass over the file, only if anything was
    rejected; the rejected line numbers are looked up a window of lines at a time."""
    if not con.execute(f"SELECT count(*) FROM {stage} WHERE reason IS NOT NULL "
                       "AND raw IS NULL").fetchone()[0]:  # type: ignore[index]
        return
    stream, _ = open_binary(source.path, source.compression)
    want: set[int] = set()
    hi = 0
    found: list[tuple[int, str]] = []

    def flush() -> None:
        if not found:
            return
        table = pa.table({"line": pa.array([f[0] for f in found], pa.int64()),
                          "raw": pa.array([f[1] for f in found], pa.string())})
        con.register("raw_lines", table)
        try:
            con.execute(f"UPDATE {stage} SET raw = r.raw FROM raw_lines r "
                        f"WHERE {stage}.line = r.line AND {stage}.raw IS NULL")
        finally:
            con.unregister("raw_lines")
        found.clear()

    try:
        for n, b in enumerate(stream, start=1):
            if n > hi:
                flush()
                lo, hi = n, n + _RAW_WINDOW - 1
                want = {int(r[0]) for r in con.execute(
                    f"SELECT line FROM {stage} WHERE reason IS NOT NULL AND raw IS NULL "
                    "AND line BETWEEN $lo AND $hi", {"lo": lo, "hi": hi}).fetchall()}
            if n in want:
                found.append((n, _text(b)))
        flush()
    except (OSError, EOFError) as exc:
        raise read_failure(source.path, exc) from None
    finally:
        stream.close()


def _raw_names(source: Source) -> list[tuple[str, str]]:
    """(original name, chunk column) pairs to rebuild a raw record for Parquet rejects."""
    plan = getattr(source, "plan", None)
    if plan is None:
        return []
    pairs, seen = [], set()
    for c, name in plan.canonical.items():
        if c != "geometry" and name not in seen:  # a column feeding several: listed once
            seen.add(name)
            pairs.append((name, f"CAST(c_{c} AS VARCHAR)"))
    pairs += [(name, f"CAST(x_{i} AS VARCHAR)") for i, name in enumerate(source.extras)]
    return pairs


def _reconcile_lines(source: Source) -> None:
    """Every physical line is the header, a blank line, or part of exactly one record."""
    st = source.stats
    independent = source.independent_lines
    if independent is None:
        independent = count_lines(source.path, source.compression)
    accounted = st.header_lines + st.blank_lines + st.records + st.continuation_lines
    if not (accounted == st.physical_lines == independent):
        raise InternalError(
            f"{source.path}: line accounting failed: {independent} lines in the file, "
            f"{st.physical_lines} read, {accounted} accounted for (header {st.header_lines}, "
            f"blank {st.blank_lines}, records {st.records}, continuation "
            f"{st.continuation_lines}); nothing was ingested. Please report this file.")


#: Two geometries are the same content when they have the same structure and every vertex of
#: one is within this distance (in degrees of lon/lat, about 0.1 mm) of the matching vertex of
#: the other, rings compared as cycles (SPEC §3.3): the same event reprojected through another
#: pipeline differs only in the last bits of its coordinates, and another exporter may start a
#: ring at another vertex.
GEOMETRY_TOLERANCE_DEG = 1e-9


def _same_except_geometry(a: str, b: str) -> str:
    """SQL: rows ``a`` and ``b`` have equal content in every field but the geometry."""
    return "NOT (" + " OR ".join(f"{a}.{f} IS DISTINCT FROM {b}.{f}" for f in _CONTENT_FIELDS
                                 if f != "geometry") + ")"


def _settle_geometry_tolerance(con: duckdb.DuckDBPyConnection, stage: str, cls: str) -> None:
    """Turn conflicts that differ only by geometry within the tolerance into duplicates.

    ``content_hash`` includes the geometry exactly (and keeps the definition stored databases
    were written with), so it only ever proves sameness. A conflict whose other fields are all
    equal is checked here vertex by vertex (:func:`usagectl.sources.geometry.same_shape`): the
    ring may start from another vertex, be wound the other way, and parts and holes may come in
    another order; another vertex count, ring or part, or any vertex moved further than the
    tolerance, stays a conflict.
    """
    import shapely

    same = con.sql(f"""
SELECT c.rownum, s.geometry AS a, o.geometry AS b
FROM {cls} c JOIN {stage} s USING (rownum)
JOIN events o ON o.owner_id = s.owner_id AND o.event_id = s.event_id
WHERE c.outcome = 'conflict_stored' AND {_same_except_geometry('s', 'o')}
UNION ALL
SELECT c.rownum, s.geometry, f.geometry
FROM {cls} c JOIN {stage} s USING (rownum) JOIN {stage} f ON f.rownum = c.first_rownum
WHERE c.outcome = 'conflict_file' AND {_same_except_geometry('s', 'f')}""")
    settled: list[int] = []
    for batch in same.to_arrow_reader(50_000):
        a = shapely.from_wkb(batch.column("a").to_numpy(zero_copy_only=False))
        b = shapely.from_wkb(batch.column("b").to_numpy(zero_copy_only=False))
        equal = same_shape(a, b, GEOMETRY_TOLERANCE_DEG)
        rownums = batch.column("rownum").to_numpy(zero_copy_only=False)
        settled.extend(int(r) for r in rownums[equal])
    if not settled:
        return
    con.register("tolerance_settled", pa.table({"rownum": pa.array(settled, pa.int64())}))
    try:
        con.execute(f"UPDATE {cls} SET outcome = 'duplicate' "
                    "WHERE rownum IN (SELECT rownum FROM tolerance_settled)")
    finally:
        con.unregister("tolerance_settled")


#: Staged rows per piece of the commit (docs/ingest.md "Memory and speed"): the classification
#: runs on hash partitions of ``(owner_id, event_id)`` and the insert on ranges of ``rownum``,
#: each with about this many rows, so that the memory the commit needs does not grow with the
#: file. Every piece runs inside the one commit transaction.
COMMIT_PARTITION_ROWS = 1_000_000


def _commit_partitions(rows: int) -> int:
    """How many hash partitions the commit classifies ``rows`` staged rows in (1 for a file of
    at most :data:`COMMIT_PARTITION_ROWS` rows)."""
    return max(1, -(-int(rows) // COMMIT_PARTITION_ROWS))


def _partition_filter(parts: int, p: int, alias: str = "") -> str:
    """SQL: the row's ``(owner_id, event_id)`` falls in hash partition ``p`` of ``parts``
    (integers only, formatted; ``alias`` from this module)."""
    if parts == 1:
        return "true"
    a = f"{alias}." if alias else ""
    return f"hash({a}owner_id, {a}event_id) % {int(parts)} = {int(p)}"


def _classify(con: duckdb.DuckDBPyConnection, stage: str, cls: str, rest: str,
              valid: int) -> tuple[int, int, int]:
    """Classify the valid staged rows, one hash partition of ``(owner_id, event_id)`` at a time.

    In each partition the first row of a key is the one with the lowest ``rownum`` (file
    order), the stored event of the key is found by a join restricted to the partition. A key
    neither stored nor repeated in the file (nearly all, in a new file) is accepted without
    any row-level work; only the rows of the other keys are classified row by row, exactly as
    before: a row of a stored key is a duplicate (same content hash) or ``conflict_stored``; a
    later row of a key first seen in this file is a duplicate of the first or
    ``conflict_file``. Conflicts go to ``cls`` (``rownum``, ``first_rownum``, the stored side,
    ``outcome``); ``rest`` gets the ``rownum`` of every valid row not accepted (the insert
    leaves them out). Returns (accepted, duplicates, repaired among the accepted).
    """
    parts = _commit_partitions(valid)
    accepted = duplicates = repaired = counted = 0
    keys, hot = f"{cls}_keys", f"{cls}_hot"
    for p in range(parts):
        con.execute(f"""
CREATE OR REPLACE TEMP TABLE {keys} AS
SELECT f.owner_id, f.event_id, f.first_rownum, f.n, f.first_repaired,
    e.event_id IS NOT NULL AS stored, e.content_hash AS stored_hash,
    e.ingest_id AS other_ingest, e.source_line AS other_line
FROM (SELECT owner_id, event_id, min(rownum) AS first_rownum, count(*) AS n,
             arg_min(repaired, rownum) AS first_repaired
      FROM {stage} WHERE reason IS NULL AND {_partition_filter(parts, p)}
      GROUP BY owner_id, event_id) f
LEFT JOIN (SELECT owner_id, event_id, content_hash, ingest_id, source_line
           FROM events WHERE {_partition_filter(parts, p)}) e
    ON e.owner_id = f.owner_id AND e.event_id = f.event_id""")
        row = con.execute(f"""
SELECT count(*) FILTER (WHERE NOT stored), count(*) FILTER (WHERE NOT stored AND first_repaired),
    coalesce(sum(n), 0), count(*) FILTER (WHERE stored OR n > 1)
FROM {keys}""").fetchone()
        assert row is not None
        accepted += int(row[0])
        repaired += int(row[1])
        counted += int(row[2])
        if int(row[3]):
            con.execute(f"""
CREATE OR REPLACE TEMP TABLE {hot} AS
WITH hot_rows AS (
    SELECT s.rownum, s.content_hash, k.first_rownum, k.stored, k.stored_hash, k.other_ingest,
        k.other_line,
        first_value(s.content_hash) OVER (PARTITION BY s.owner_id, s.event_id
                                          ORDER BY s.rownum) AS first_hash
    FROM {stage} s JOIN (SELECT * FROM {keys} WHERE stored OR n > 1) k
        ON k.owner_id = s.owner_id AND k.event_id = s.event_id
    WHERE s.reason IS NULL
)
SELECT rownum, first_rownum, other_ingest, other_line,
    CASE WHEN stored AND stored_hash = content_hash THEN 'duplicate'
         WHEN stored THEN 'conflict_stored'
         WHEN content_hash = first_hash THEN 'duplicate'
         ELSE 'conflict_file' END AS outcome
FROM hot_rows WHERE stored OR rownum <> first_rownum""")
            duplicates += int(con.execute(  # type: ignore[index]
                f"SELECT count(*) FROM {hot} WHERE outcome = 'duplicate'").fetchone()[0])
            con.execute(f"INSERT INTO {cls} SELECT * FROM {hot} WHERE outcome <> 'duplicate'")
            con.execute(f"INSERT INTO {rest} SELECT rownum FROM {hot}")
            con.execute(f"DROP TABLE {hot}")
        con.execute(f"DROP TABLE {keys}")
    if counted != valid:
        raise InternalError(f"the commit's partitions classified {counted} of {valid} valid "
                            "rows; nothing was ingested. Please report this.")
    return accepted, duplicates, repaired


def _insert_accepted(con: duckdb.DuckDBPyConnection, stage: str, rest: str, ingest_id: int,
                     ingested_at: datetime, accepted: int) -> None:
    """Insert the accepted rows (the valid rows not in ``rest``) into ``events``, one range of
    about :data:`COMMIT_PARTITION_ROWS` ``rownum`` values at a time (the staging table is in
    file order up to the morsels each thread staged, so a range reads only a few row groups)."""
    if not accepted:
        return
    lo, hi = con.execute(f"SELECT min(rownum), max(rownum) FROM {stage} "  # type: ignore[misc]
                         "WHERE reason IS NULL").fetchone()
    cols = ", ".join(_EVENT_COLUMNS)
    scols = ", ".join(f"s.{c}" for c in _EVENT_COLUMNS)
    inserted = 0
    for first in range(int(lo), int(hi) + 1, COMMIT_PARTITION_ROWS):
        last = first + COMMIT_PARTITION_ROWS - 1
        inserted += int(con.execute(f"""
INSERT INTO events ({cols}, ingest_id, source_line, ingested_at)
SELECT {scols}, $ingest, s.line, $at
FROM {stage} s
WHERE s.reason IS NULL AND s.rownum BETWEEN $lo AND $hi
  AND NOT EXISTS (SELECT 1 FROM {rest} r
                  WHERE r.rownum BETWEEN $lo AND $hi AND r.rownum = s.rownum)""",
            {"ingest": ingest_id, "at": ingested_at, "lo": first, "hi": last}).fetchone()[0])  # type: ignore[index]
    if inserted != accepted:
        raise InternalError(f"the commit inserted {inserted} events but classified {accepted} "
                            "as accepted; nothing was ingested. Please report this.")


def _commit(con: duckdb.DuckDBPyConnection, stage: str, ingest_id: int, source: Source,
            options: IngestOptions, result: FileResult) -> None:
    """Classify staged rows and land them in one transaction (SPEC §3.3).

    The classification and the insert run as several statements (:func:`_classify`,
    :func:`_insert_accepted`), each on a bounded part of the file, all inside the one
    transaction: the file lands whole or not at all."""
    cls, rest = f"cls_{int(ingest_id)}", f"rest_{int(ingest_id)}"
    ingested_at = datetime.now(UTC)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE TEMP TABLE {cls} (rownum BIGINT, first_rownum BIGINT, "
                    "other_ingest BIGINT, other_line BIGINT, outcome VARCHAR)")
        con.execute(f"CREATE TEMP TABLE {rest} (rownum BIGINT)")
        rows_read, invalid = (int(x) for x in con.execute(  # type: ignore[union-attr]
            f"SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL) FROM {stage}").fetchone())
        accepted, duplicates, repaired = _classify(con, stage, cls, rest, rows_read - invalid)
        _settle_geometry_tolerance(con, stage, cls)
        settled, conflicts = (int(x) for x in con.execute(  # type: ignore[union-attr]
            f"SELECT count(*) FILTER (WHERE outcome = 'duplicate'), "
            f"count(*) FILTER (WHERE outcome LIKE 'conflict%') FROM {cls}").fetchone())
        duplicates += settled
        rejected = invalid + conflicts
        result.rows_read, result.accepted, result.duplicates = rows_read, accepted, duplicates
        result.rejected, result.conflicts, result.repaired = rejected, conflicts, repaired
        if rows_read != source.stats.records:
            raise InternalError(f"{source.path}: {source.stats.records} records read but "
                                f"{rows_read} staged; nothing was ingested. Please report this.")
        if accepted + duplicates + rejected != rows_read:
            raise InternalError(f"{source.path}: accounting broke ({accepted} accepted + "
                                f"{duplicates} duplicates + {rejected} rejected ≠ {rows_read} "
                                "read); nothing was ingested. Please report this.")
        # Rejects: invalid rows, then conflicts naming both sides.
        con.execute(f"INSERT INTO rejects SELECT ?, line, reason, raw FROM {stage} "
                    "WHERE reason IS NOT NULL ORDER BY rownum", [ingest_id])
        con.execute(_conflict_rejects(
            stage, cls, "conflict_stored",
            "JOIN events e ON e.owner_id = s.owner_id AND e.event_id = s.event_id "
            "LEFT JOIN ingests i ON i.id = e.ingest_id",
            "format('conflict: event_id {} of owner {} is already stored from {} line {} "
            "(ingest #{}) with different {}; the stored event was kept. If this is a different "
            "event, give it its own event_id', s.event_id, s.owner_id, i.path, e.source_line, "
            f"e.ingest_id, {_differs('s', 'e')})"), [ingest_id])
        con.execute(_conflict_rejects(
            stage, cls, "conflict_file", f"JOIN {stage} f ON f.rownum = c.first_rownum",
            "format('conflict: event_id {} of owner {} appears earlier in this file (line {}) "
            "with different {}; the earlier row was kept. If this is a different event, give "
            f"it its own event_id', s.event_id, s.owner_id, f.line, {_differs('s', 'f')})"),
            [ingest_id])
        if options.strict and rejected:
            first = con.execute("SELECT line, reason FROM rejects WHERE ingest_id = ? "
                                "ORDER BY line LIMIT 1", [ingest_id]).fetchone()
            message = (f"{source.path}: --strict: {rejected} of {rows_read} rows rejected "
                       f"(first: line {first[0]}: {first[1]}); nothing from this file was "
                       "stored. See `usagectl rejects --ingest " f"{ingest_id}`")
            con.execute(
                "UPDATE ingests SET status = 'failed', error = ?, finished_at = ?, format = ?, "
                "rows_read = ?, accepted = 0, duplicates = 0, rejected = ?, conflicts = ?, "
                "repaired = 0, blank_lines = ? WHERE id = ?",
                [message, datetime.now(UTC), source.format, rows_read, rejected, conflicts,
                 source.stats.blank_lines, ingest_id])
            con.execute("COMMIT")
            result.status, result.error, result.error_code = "failed", message, "validation_error"
            result.accepted = result.duplicates = result.repaired = 0
            return
        _insert_accepted(con, stage, rest, ingest_id, ingested_at, accepted)
        con.execute(
            "UPDATE ingests SET status = 'ok', finished_at = ?, format = ?, rows_read = ?, "
            "accepted = ?, duplicates = ?, rejected = ?, conflicts = ?, repaired = ?, "
            "blank_lines = ? WHERE id = ?",
            [datetime.now(UTC), source.format, rows_read, accepted, duplicates, rejected,
             conflicts, repaired, source.stats.blank_lines, ingest_id])
        con.execute(f"DROP TABLE {cls}")
        con.execute(f"DROP TABLE {rest}")
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise
