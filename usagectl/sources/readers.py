"""Read event files in bounded chunks, one Arrow table per chunk (SPEC §3.2).

Every reader yields every record of the file exactly once, in order, each with its line (CSV,
JSON Lines: physical line where the record starts; GeoJSON: feature number; Parquet: row number,
all 1-based). A record that cannot be split into values (bad quoting, wrong field count, invalid
UTF-8, a JSON line that does not parse) is still yielded, with ``_pre_reason`` set, so it becomes
a rejected row rather than a lost one. Memory is bounded by the chunk size, never the file size.

Chunk columns: ``c_<canonical>`` for every canonical column (null when the source lacks it),
``x_<n>`` for the extra source columns listed in ``extras`` (their original names are bound as
SQL parameters later, never formatted into SQL), ``_attributes`` (JSON text, JSON sources only),
``_line``, ``_raw`` (the record as read, for reject listings) and ``_pre_reason``.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import json
import os
import re
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from usagectl.errors import IOFailure, ValidationError
from usagectl.sources.columns import (
    CANONICAL,
    ColumnPlan,
    RecordKeyResolver,
    missing_columns_message,
    missing_required,
    plan_columns,
)

CHUNK_ROWS = 50_000
# A quoted field longer than this many physical lines is taken as an unterminated quote: the
# opening line is rejected and the following lines are read again as records of their own.
MAX_RECORD_LINES = 1_000
MAX_RECORD_BYTES = 4 * 1024 * 1024
# CsvSource.fast_scan and JsonLinesSource.fast_scan (_scan_runs) vouch for the file a block of
# whole lines at a time (about this many bytes). A block they cannot vouch for is a region the
# exact reader reads; past either limit below (regions' share of the file's bytes, their
# number) the whole file goes to the exact reader instead (docs/ingest.md "Regions").
SCAN_BLOCK_BYTES = 1 << 22
# A block the scan cannot vouch for is vouched again in pieces of about this many bytes, so
# that a region is the pieces with the trouble, not the whole block.
REGION_PIECE_BYTES = 1 << 16
REGION_MAX_SHARE = 0.25
REGION_MAX_COUNT = 1_000

FORMATS = ("csv", "tsv", "parquet", "geojson", "jsonl")
_SUFFIX_FORMAT = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "csv",
    ".parquet": "parquet", ".geoparquet": "parquet", ".pq": "parquet",
    ".geojson": "geojson", ".json": "json",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".geojsonl": "jsonl", ".geojsonseq": "jsonl",
}
_COMPRESSION = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}


def detect_format(path: Path) -> tuple[str, str | None]:
    """Format and compression from the file name (``events.csv.gz`` → csv, gzip)."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = None
    if suffixes and suffixes[-1] in _COMPRESSION:
        compression = _COMPRESSION[suffixes.pop()]
    fmt = _SUFFIX_FORMAT.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise ValidationError(
            f"{path}: cannot tell the format from the name; use one of .csv .tsv .parquet "
            ".geojson .json .jsonl .ndjson (optionally with .gz or .zst)")
    if fmt == "parquet" and compression:
        raise ValidationError(f"{path}: Parquet is compressed internally; decompress the file first")
    if fmt == "json":
        fmt = _sniff_json(path, compression)
    return fmt, compression


def is_supported(path: Path) -> bool:
    try:
        suffixes = [s.lower() for s in path.suffixes]
        if suffixes and suffixes[-1] in _COMPRESSION:
            suffixes.pop()
        return bool(suffixes) and suffixes[-1] in _SUFFIX_FORMAT
    except Exception:
        return False


class _CountingReader(io.RawIOBase):
    """Wraps a raw file so the progress bar can follow compressed bytes consumed."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b)
        self.consumed += n or 0
        return n or 0

    def close(self) -> None:
        self._f.close()
        super().close()


class _Decompressed(io.RawIOBase):
    """A decompressed stream that fails loudly: a truncated stream raises ``EOFError``, corrupt
    data ``OSError``, so a damaged file fails whole instead of yielding a prefix of its rows.

    zstd's ``stream_reader`` returns a partial stream at a truncated end without an error (the
    line count then read the same partial stream), so zstd is decoded frame by frame with a
    ``decompressobj`` whose ``eof`` says whether the frame ended. Several frames are read one
    after the other (as ``zstd -d`` does). gzip raises ``EOFError`` itself but corrupt deflate
    data raises ``zlib.error``, which is not an ``OSError``; both kinds are mapped here.
    """

    _zstd_error: Any = ()  # zstandard.ZstdError once zstd is in use (an empty tuple matches none)

    def __init__(self, raw: BinaryIO, compression: str, path: Path) -> None:
        self._raw = raw
        self._kind = compression
        self._path = path
        self._buf = memoryview(b"")
        self._done = False
        if compression == "gzip":
            self._gz: gzip.GzipFile | None = gzip.GzipFile(fileobj=raw, mode="rb")
        else:
            import zstandard

            self._gz = None
            self._zstd = zstandard.ZstdDecompressor()
            self._frame: Any = None  # the current frame's decompressobj
            self._zstd_error = zstandard.ZstdError

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            if self._gz is not None:
                return self._gz.readinto(b)
            while not self._buf:
                if self._done:
                    return 0
                self._fill()
        except zlib.error as exc:
            raise OSError(f"not a valid gzip stream ({exc})") from None
        except self._zstd_error as exc:
            raise OSError(f"not a valid zstd stream ({exc})") from None
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def _fill(self) -> None:
        # Small input pieces bound the output of one call (a 1 KiB piece of run-length blocks
        # inflates to at most ~32 MiB) however compressible a hostile file is.
        data = self._raw.read(1 << 10)
        if not data:
            self._done = True
            if self._frame is not None and not self._frame.eof:
                raise EOFError("the zstd stream ends inside a frame")
            if self._frame is None:
                raise EOFError("the file is empty: no zstd frame")
            return
        out = []
        while data:
            if self._frame is None or self._frame.eof:
                self._frame = self._zstd.decompressobj()
            out.append(self._frame.decompress(data))
            data = self._frame.unused_data if self._frame.eof else b""
        self._buf = memoryview(b"".join(out))

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
        self._raw.close()
        super().close()


def open_binary(path: Path, compression: str | None) -> tuple[BinaryIO, _CountingReader]:
    """A decompressed binary stream and the counter of raw bytes read beneath it."""
    try:
        f = open(path, "rb")  # noqa: SIM115 — closed by the caller
    except OSError as exc:
        raise IOFailure(f"{path}: cannot open: {exc.strerror}") from None
    raw = _CountingReader(f)
    if compression in ("gzip", "zstd") and os.fstat(f.fileno()).st_size == 0:
        # Even an empty payload compresses to a header (gzip 20 bytes, zstd 9): zero bytes is a
        # copy that never arrived, for gzip and zstd alike (gzip's reader would yield nothing).
        raw.close()
        raise IOFailure(f"{path}: empty: a compressed file holds at least a header; the file is "
                        "truncated or was never written; nothing from it was stored. Copy it "
                        "again from its source")
    buffered = io.BufferedReader(raw, buffer_size=1 << 20)
    if compression in ("gzip", "zstd"):
        stream = _Decompressed(buffered, compression, path)  # type: ignore[arg-type]
        return io.BufferedReader(stream, buffer_size=1 << 20), raw  # type: ignore[return-value]
    return buffered, raw  # type: ignore[return-value]


def read_failure(path: Path, exc: BaseException) -> IOFailure:
    """The whole-file failure for a stream that could not be read to its end."""
    if isinstance(exc, EOFError):
        return IOFailure(f"{path}: the compressed data ends early ({exc}): the file is "
                         "truncated; nothing from it was stored. Copy it again from its source")
    return IOFailure(f"{path}: cannot read ({exc}); nothing from it was stored")


def count_lines(path: Path, compression: str | None) -> int:
    """Count physical lines by raw newline bytes: the independent check on the CSV reader."""
    stream, _ = open_binary(path, compression)
    lines, last = 0, b"\n"
    try:
        while block := stream.read(1 << 22):
            lines += block.count(b"\n")
            last = block[-1:]
    except (OSError, EOFError) as exc:
        raise read_failure(path, exc) from None
    finally:
        stream.close()
    return lines + (0 if last == b"\n" else 1)


def _sniff_json(path: Path, compression: str | None) -> str:
    """A ``.json`` file is JSON Lines when its first non-blank line is a whole JSON object."""
    stream, _ = open_binary(path, compression)
    try:
        for line in stream:
            if line.strip():
                try:
                    obj = json.loads(line)
                except ValueError:
                    return "geojson"
                if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
                    return "geojson"
                return "jsonl" if isinstance(obj, dict) else "geojson"
        return "jsonl"
    except (OSError, EOFError) as exc:
        raise read_failure(path, exc) from None
    finally:
        stream.close()


@dataclass
class SourceStats:
    """Counts a reader keeps so that every physical line can be accounted for."""

    records: int = 0
    blank_lines: int = 0
    header_lines: int = 0
    physical_lines: int = 0  # lines read from the file (CSV, JSON Lines)
    continuation_lines: int = 0  # lines after the first of a multi-line CSV record
    seen_canonical: set[str] = field(default_factory=set)


class Source:
    """Base class of the four readers."""

    format = ""
    declared_crs: str | None = None  # a CRS the file itself declares (GeoParquet, legacy GeoJSON)

    def __init__(self, path: Path, compression: str | None, mapping: dict[str, str],
                 owner_given: bool) -> None:
        self.path = path
        self.compression = compression
        self.mapping = mapping
        self.owner_given = owner_given
        self.stats = SourceStats()
        self.extras: list[str] = []
        self._counter: _CountingReader | None = None
        # Physical lines counted by a pass of its own (CsvSource.fast_scan), when one was made.
        self.independent_lines: int | None = None

    def bytes_consumed(self) -> int:
        return self._counter.consumed if self._counter else 0

    def chunks(self) -> Iterator[pa.Table]:  # pragma: no cover — abstract
        raise NotImplementedError

    def write_spans(self, layout: CsvLayout | JsonlLayout, target: Path) -> None:
        """Write the header line (CSV) and the vouched spans of ``layout`` (``layout.spans``)
        to ``target``, a plain file a bulk parser can read (regions: docs/ingest.md)."""
        with open(self.path, "rb") as f, open(target, "wb") as out:
            out.write(f.read(layout.header_bytes))
            for _, _, lo, hi in layout.spans:
                f.seek(lo)
                left = hi - lo
                while left > 0:
                    piece = f.read(min(left, 1 << 22))
                    if not piece:
                        raise OSError(f"{self.path} shrank while it was read")
                    out.write(piece)
                    left -= len(piece)

    def finish(self) -> None:
        """Whole-file checks after the last chunk (e.g. a required key no record had)."""


def _table(columns: dict[str, list], extras: list[list], lines: list[int], raw: list,
           pre: list, attributes: list | None = None) -> pa.Table:
    arrays: dict[str, Any] = {}
    n = len(lines)
    for c in CANONICAL:
        vals = columns.get(c)
        if vals is None:
            arrays["c_" + c] = pa.nulls(n, pa.string())
        elif c == "geometry" and any(isinstance(v, (bytes, bytearray)) for v in vals):
            arrays["c_" + c] = pa.array(vals, pa.binary())
        else:
            arrays["c_" + c] = pa.array(vals, pa.string())
    for i, vals in enumerate(extras):
        arrays[f"x_{i}"] = pa.array(vals, pa.string())
    if attributes is not None:
        arrays["_attributes"] = pa.array(attributes, pa.string())
    arrays["_line"] = pa.array(lines, pa.int64())
    arrays["_raw"] = pa.array(raw, pa.string())
    arrays["_pre_reason"] = pa.array(pre, pa.string())
    return pa.table(arrays)


# --------------------------------------------------------------------------------------- CSV


class CsvSource(Source):
    """CSV/TSV with geometry as WKT, GeoJSON text or hex WKB.

    Records are split by counting quote characters per physical line, so a quoted newline keeps
    a record whole, and an unterminated quote cannot swallow the rest of the file: a record that
    stays open past ``MAX_RECORD_LINES`` or the end of the file, or that spans several lines and
    then has the wrong number of values, rejects only its first line, and the lines after it are
    read again as records (RELIABILITY.md: a reader that swallowed the next row lost an event).
    Blank lines carry no event; they are counted (``blank_lines``) rather than treated as rows.
    """

    def __init__(self, path: Path, compression: str | None, mapping: dict[str, str],
                 owner_given: bool, delimiter: str | None = None) -> None:
        super().__init__(path, compression, mapping, owner_given)
        self.format = "tsv" if delimiter == "\t" else "csv"
        self._delimiter = delimiter

    def _lines(self, stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
        for n, line in enumerate(stream, start=1):
            yield n, line

    def chunks(self) -> Iterator[pa.Table]:
        stream, self._counter = open_binary(self.path, self.compression)
        try:
            yield from self._chunks(stream)
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            raise read_failure(self.path, exc) from None
        finally:
            stream.close()

    def _chunks(self, stream: BinaryIO) -> Iterator[pa.Table]:
        lines = self._lines(stream)
        header_line = None
        for n, b in lines:
            self.stats.physical_lines += 1
            if b.strip():
                header_line = (n, b)
                break
            self.stats.blank_lines += 1
        if header_line is None:
            raise ValidationError(f"{self.path}: the file is empty (no header line)")
        self.stats.header_lines = 1
        header, plan = self._parse_header(header_line[1])
        batch = _CsvBatch(header, plan)
        for start, parts in self._records(lines, len(header)):
            self.stats.records += 1
            if batch.add(start, parts) >= CHUNK_ROWS:
                yield batch.flush()
        if len(batch):
            yield batch.flush()

    def _parse_header(self, line: bytes) -> tuple[list[str], ColumnPlan]:
        """The header's column names and their plan; sets the delimiter and ``extras``."""
        try:
            header_text = line.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError(f"{self.path}: the header is not valid UTF-8; "
                                  "re-save the file as UTF-8") from None
        delim = self._delimiter or _sniff_delimiter(header_text)
        self._delimiter = delim
        try:
            header = next(csv.reader([header_text], delimiter=delim, strict=True))
        except csv.Error as exc:
            raise ValidationError(f"{self.path}: cannot parse the header: {exc}") from None
        except StopIteration:  # pragma: no cover — a non-blank line has at least one value
            header = []
        header = [h.strip() for h in header]
        header = [h or f"column_{i + 1}" for i, h in enumerate(header)]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise ValidationError(f"{self.path}: duplicate column names in the header: "
                                  f"{', '.join(dupes)}; rename them")
        plan = plan_columns(header, self.mapping)
        missing = missing_required(plan.canonical, self.owner_given)
        if missing:
            raise ValidationError(f"{self.path}: " + missing_columns_message(missing, header),
                                  {"missing": missing, "columns": header})
        self.extras = plan.extras
        self.stats.seen_canonical = set(plan.canonical)
        return header, plan

    def fast_scan(self) -> CsvLayout | None:
        """One pass over the raw bytes: may a bulk parser (DuckDB ``read_csv``) read this file?

        The answer is yes only when every line after the header is one whole record that the
        bulk parser and the exact splitter (:meth:`_records`) read alike: the header is the
        first line; no blank or whitespace-only line; no NUL byte; a CR only as part of CRLF;
        valid UTF-8; and no whitespace between a quote and a delimiter or a line's edge
        (DuckDB trims it, Python's ``csv`` keeps it). Blocks it cannot vouch for (re-vouched in
        ``REGION_PIECE_BYTES`` pieces) are listed in ``runs``: :meth:`region_chunks` reads them
        with the exact splitter; too many of them (``REGION_MAX_SHARE``, ``REGION_MAX_COUNT``)
        or any in a compressed file send the whole file there. The caller still checks that the bulk parser returns exactly
        one record per line after the header; together with "no blank line" this proves that
        no record spans lines, so record ``i`` is line ``i + 1``.

        Counts physical lines by newline bytes as it goes: the independent count the ingest
        reconciles against. Returns ``None`` when the file must go to the exact splitter.
        Raises like :meth:`chunks` for a damaged (truncated) compressed file or a bad header.
        """
        stream, self._counter = open_binary(self.path, self.compression)
        try:
            first = stream.readline()
            if not first.strip():
                return None  # empty file or leading blank lines: the exact path says why
            header, plan = self._parse_header(first)
            if not first.endswith(b"\n"):
                return None
            delim = self._delimiter or ","
            flags: set[str] = set()
            width = len(header)
            if _vouch(first, delim, width, set()) is None:
                return None
            scan = _scan_runs(stream, lambda b: _vouch(b, delim, width, flags), 1, len(first),
                              self.compression)
        except (OSError, EOFError) as exc:
            raise read_failure(self.path, exc) from None
        finally:
            stream.close()
        if scan is None:
            return None
        lines, offset, runs = scan
        return CsvLayout(header=header, plan=plan, delimiter=self._delimiter or ",",
                         lines=lines, url_like="url" in flags,
                         runs=runs, size=offset, header_bytes=len(first))

    def region_chunks(self, layout: CsvLayout) -> Iterator[pa.Table]:
        """Chunks of the records in the regions :meth:`fast_scan` could not vouch for, read by
        the exact splitter; as it goes, sets ``layout.spans`` to the vouched lines a bulk parser
        reads and adds the regions' lines to :attr:`stats` (see :class:`RegionTally`).

        A vouched line is one whole record with balanced quotes, so the exact splitter started
        at the first line ``a`` of an unvouched run is between records, as if it had read the
        file from the start. Its records are kept up to the first one that starts on a vouched
        line at or after the end ``b`` of the run (a record that starts inside a later
        unvouched run extends the region over that run): that line ``c`` may lie past ``b``
        when a multi-line or unterminated record reached into the vouched lines. The region is
        lines ``[a, c)``; the bulk parser resumes at ``c``. Only plain (uncompressed) files
        have regions: the splitter seeks to them.
        """
        runs = layout.runs
        starts = [r[0] for r in runs]
        end_line, end_off = layout.lines + 1, layout.size
        width = len(layout.header)
        batch = _CsvBatch(layout.header, layout.plan)
        tally = layout.tally = RegionTally()
        spans: list[tuple[int, int, int, int]] = []
        bulk_line, bulk_off = 2, layout.header_bytes  # where the current vouched span starts
        i = 0
        with open(self.path, "rb") as f:
            while i < len(runs):
                a, a_off, vouched = runs[i]
                if vouched:  # (each region ends on a vouched line: the next run is unvouched)
                    i += 1
                    continue
                if bulk_line < a:
                    spans.append((bulk_line, a, bulk_off, a_off))
                b = starts[i + 1] if i + 1 < len(runs) else end_line
                f.seek(a_off)
                feed = _LineFeed(f, a, a_off)
                before = (self.stats.blank_lines, self.stats.continuation_lines)
                c = c_off = None
                for start, parts in self._records(iter(feed), width):
                    if start >= b:
                        k = bisect.bisect_right(starts, start) - 1
                        if runs[k][2]:
                            c, c_off = start, feed.offset_of(start)
                            break
                        b = starts[k + 1] if k + 1 < len(runs) else end_line
                    tally.records += 1
                    if batch.add(start, parts) >= CHUNK_ROWS:
                        yield batch.flush()
                if c is None:  # the region reaches the end of the file
                    c, c_off = end_line, end_off
                tally.blank_lines += self.stats.blank_lines - before[0]
                tally.continuation_lines += self.stats.continuation_lines - before[1]
                tally.lines += c - a
                tally.regions += 1
                bulk_line, bulk_off = c, c_off
                i = bisect.bisect_right(starts, c)
        if len(batch):
            yield batch.flush()
        if bulk_line < end_line:
            spans.append((bulk_line, end_line, bulk_off, end_off))
        layout.spans = spans

    def _records(self, lines: Iterator[tuple[int, bytes]], width: int
                 ) -> Iterator[tuple[int, tuple[str, list[str] | None, str | None]]]:
        """Yield (first line, (record text, values or None, reason or None)) per record."""
        delim = self._delimiter or ","
        pushback: deque[tuple[int, bytes]] = deque()

        def next_line() -> tuple[int, bytes] | None:
            if pushback:
                return pushback.popleft()
            for item in lines:
                self.stats.physical_lines += 1
                return item
            return None

        while True:
            first = next_line()
            if first is None:
                return
            n, b = first
            if not b.strip():
                self.stats.blank_lines += 1
                continue
            pending = [first]
            quotes = b.count(b'"')
            size = len(b)
            while quotes % 2 == 1 and len(pending) < MAX_RECORD_LINES and size < MAX_RECORD_BYTES:
                nxt = next_line()
                if nxt is None:
                    break
                pending.append(nxt)
                quotes += nxt[1].count(b'"')
                size += len(nxt[1])
            if quotes % 2 == 1:
                # Unterminated quote: reject the opening line alone, re-read the rest.
                pushback.extendleft(reversed(pending[1:]))
                yield n, (_text(b), None,
                          "unterminated quote: this line opens a quoted value that never closes; "
                          "fix the quoting (a literal \" inside a value is written \"\")")
                continue
            blob = b if len(pending) == 1 else b"".join(p[1] for p in pending)
            try:
                text = blob.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.stats.continuation_lines += len(pending) - 1
                yield n, (_text(blob), None,
                          f"not valid UTF-8 (byte 0x{blob[exc.start]:02x} at offset {exc.start}); "
                          "re-save the file as UTF-8")
                continue
            try:
                rows = list(csv.reader([text], delimiter=delim, strict=True))
            except csv.Error as exc:
                if len(pending) > 1:
                    pushback.extendleft(reversed(pending[1:]))
                    text = _text(b)
                yield n, (text.rstrip("\r\n"), None,
                          f"malformed CSV quoting ({exc}); fix the quoting")
                continue
            vals = rows[0] if rows else []
            if len(vals) != width:
                if len(pending) > 1:
                    # A stray quote joined lines that were separate records: keep them apart.
                    pushback.extendleft(reversed(pending[1:]))
                    yield n, (_text(b), None,
                              "unbalanced quote joins this line to the next ones; fix the quoting "
                              "(a literal \" inside a value is written \"\")")
                else:
                    yield n, (text.rstrip("\r\n"), None,
                              f"row has {len(vals)} values but the header has {width} columns; "
                              "quote values that contain the delimiter")
                continue
            self.stats.continuation_lines += len(pending) - 1
            yield n, (text.rstrip("\r\n"), vals, None)


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace").rstrip("\r\n")


def _pieces(block: bytes, size: int) -> Iterator[bytes]:
    """``block`` (whole lines) in pieces of whole lines, each about ``size`` bytes or one line."""
    i = 0
    while i < len(block):
        j = block.find(b"\n", min(i + size, len(block)) - 1)
        j = len(block) - 1 if j < 0 else j
        yield block[i:j + 1]
        i = j + 1


def _scan_runs(stream: BinaryIO, vouch: Callable[[bytes], int | None], lines: int, offset: int,
               compression: str | None) -> tuple[int, int, list[tuple[int, int, bool]]] | None:
    """The block scan shared by the CSV and JSON Lines ``fast_scan``: reads ``stream`` (after
    ``lines`` lines, ``offset`` bytes) to its end in ``SCAN_BLOCK_BYTES`` blocks of whole lines,
    each vouched for by ``vouch`` (whole lines ending in a newline → their number, or None).
    A block it refuses is vouched again in ``REGION_PIECE_BYTES`` pieces.

    Returns (physical lines in all, bytes in all, runs): the runs are the (first line, first
    byte, vouched) of each stretch of blocks or pieces alike, empty when every line was
    vouched. ``None`` (the whole file goes to the exact reader) for a line longer than
    ``MAX_RECORD_BYTES`` with no newline in a block, a compressed file with anything
    unvouched (regions are read by seeking in a plain file), more than ``REGION_MAX_COUNT``
    regions, or regions holding more than ``REGION_MAX_SHARE`` of the bytes scanned here.
    """
    start = offset
    runs: list[tuple[int, int, bool]] = []
    unvouched = [0, 0]  # bytes, runs

    def note(first_line: int, at: int, size: int, vouched: bool) -> None:
        if not runs or runs[-1][2] != vouched:
            runs.append((first_line, at, vouched))
            unvouched[1] += not vouched
        if not vouched:
            unvouched[0] += size

    tail = b""
    while block := stream.read(SCAN_BLOCK_BYTES):
        cut = block.rfind(b"\n")
        if cut < 0:
            tail += block
            if len(tail) > MAX_RECORD_BYTES:
                return None
            continue
        whole, tail = tail + block[:cut + 1], block[cut + 1:]
        n = vouch(whole)
        if n is not None:
            note(lines + 1, offset, len(whole), True)
            lines += n
            offset += len(whole)
            continue
        if compression:
            return None
        for piece in _pieces(whole, REGION_PIECE_BYTES):
            n = vouch(piece)
            note(lines + 1, offset, len(piece), n is not None)
            lines += n if n is not None else piece.count(b"\n")
            offset += len(piece)
        if unvouched[1] > REGION_MAX_COUNT:
            return None
    if tail:
        vouched = vouch(tail + b"\n") is not None
        note(lines + 1, offset, len(tail), vouched)
        if not vouched and (compression or unvouched[1] > REGION_MAX_COUNT):
            return None
        lines += 1  # the last line has no newline
        offset += len(tail)
    if unvouched[0] > REGION_MAX_SHARE * (offset - start):
        return None
    return lines, offset, runs if unvouched[1] else []


def _numbered_lines(f: BinaryIO, first: int, size: int, path: Path
                    ) -> Iterator[tuple[int, bytes]]:
    """The lines in the next ``size`` bytes of ``f``, numbered from ``first``."""
    while size > 0:
        line = f.readline(size)
        if not line:
            raise OSError(f"{path} shrank while it was read")
        yield first, line
        first += 1
        size -= len(line)


class _CsvBatch:
    """Records of the exact splitter gathered into one chunk (:func:`_table`)."""

    def __init__(self, header: list[str], plan: ColumnPlan) -> None:
        self.canon_idx = [(c, header.index(s)) for c, s in plan.canonical.items()]
        self.extra_idx = [header.index(e) for e in plan.extras]
        self.empty_row = [None] * len(header)
        self.lines: list[int] = []
        self.raw: list[str | None] = []
        self.pre: list[str | None] = []
        self.vals: list[list[str] | None] = []

    def __len__(self) -> int:
        return len(self.lines)

    def add(self, start: int, parts: tuple[str, list[str] | None, str | None]) -> int:
        text, vals, reason = parts
        self.lines.append(start)
        self.vals.append(vals)
        self.pre.append(reason)
        self.raw.append(text)  # kept for the reject listing; staged only if rejected
        return len(self.lines)

    def flush(self) -> pa.Table:
        # Transpose once; empty strings become NULL in the staging SQL (NULLIF).
        columns = list(zip(*(v if v is not None else self.empty_row for v in self.vals)))
        cols = {c: list(columns[i]) for c, i in self.canon_idx}
        ex = [list(columns[i]) for i in self.extra_idx]
        t = _table(cols, ex, self.lines, self.raw, self.pre)
        self.lines, self.raw, self.pre, self.vals = [], [], [], []
        return t


class _LineFeed:
    """Numbered lines of a plain file from line ``first`` (at byte ``offset``) on; remembers
    where the last lines it gave began (the exact splitter reads at most ``MAX_RECORD_LINES``
    ahead of a record's start)."""

    def __init__(self, f: BinaryIO, first: int, offset: int) -> None:
        self.f, self.n, self.offset = f, first, offset
        self.recent: deque[tuple[int, int]] = deque(maxlen=MAX_RECORD_LINES + 64)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for line in self.f:
            self.recent.append((self.n, self.offset))
            yield self.n, line
            self.n += 1
            self.offset += len(line)

    def offset_of(self, n: int) -> int:
        for m, off in self.recent:
            if m == n:
                return off
        raise AssertionError(f"line {n} is not among the lines last read")  # pragma: no cover


@dataclass
class RegionTally:
    """What the exact splitter read in the regions (:meth:`CsvSource.region_chunks`)."""

    regions: int = 0
    lines: int = 0  # physical lines of the regions: sum of c - a
    records: int = 0
    blank_lines: int = 0
    continuation_lines: int = 0


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


@dataclass
class CsvLayout:
    """What :meth:`CsvSource.fast_scan` found: a file a bulk CSV parser may read."""

    header: list[str]
    plan: ColumnPlan
    delimiter: str
    lines: int  # physical lines, counted by newline bytes (the header included)
    url_like: bool = True  # a ?, # or :// somewhere after the header (an endpoint may need work)
    # Runs of blocks alike, (first line, first byte, vouched), when some block is not vouched
    # (empty: every line is); the file's size in bytes and its header line's.
    runs: list[tuple[int, int, bool]] = field(default_factory=list)
    size: int = 0
    header_bytes: int = 0
    # Set by CsvSource.region_chunks: the vouched lines [first, end) at bytes [lo, hi) a bulk
    # parser reads, and what the exact splitter read in the regions.
    spans: list[tuple[int, int, int, int]] = field(default_factory=list)
    tally: RegionTally | None = None


_BLANK_LINE = re.compile(rb"(?m)^[ \t\r\x0b\x0c]*\n")
# Whitespace between a quote and a delimiter or a line's edge reads differently: ``a, "b"``
# is the value ' "b"' for Python's csv but 'b' for DuckDB (see ``_has_quote_space``).


_LINE_START_SPACE = np.array([10, 13, 32, 9, 11, 12], np.uint8)  # \n \r space \t \v \f
_SPACE = np.array([32, 9], np.uint8)


def _vouch(block: bytes, delim: str, width: int, flags: set[str]) -> int | None:
    """Whether whole lines ``block`` (ending in a newline) hold only what both CSV parsers read
    alike (see :meth:`CsvSource.fast_scan`): their number of newlines, or ``None``. Adds "url"
    to ``flags`` when the block holds a ``?``, ``#`` or ``://`` (an endpoint may need work). Vectorised
    with numpy (``bytes`` searches for a two-byte needle starting with a newline are slow);
    only candidate places (a line starting with white space, white space beside a quote) are
    looked at one by one."""
    arr = np.frombuffer(block, np.uint8)
    nl = np.flatnonzero(arr == 10)
    if b"\x00" in block or (b"\r" in block and block.count(b"\r") != block.count(b"\r\n")):
        return None
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
    starts = arr[nl[:-1] + 1] if len(nl) > 1 else arr[:0]
    if (arr[:1].size and arr[0] in _LINE_START_SPACE) or np.isin(starts, _LINE_START_SPACE).any():
        if _BLANK_LINE.search(block):
            return None
    if b"?" in block or b"#" in block:
        flags.add("url")
    elif b":" in block:
        colon = np.flatnonzero(arr[:-2] == 58)
        if ((arr[colon + 1] == 47) & (arr[colon + 2] == 47)).any():
            flags.add("url")
    d = np.flatnonzero(arr == ord(delim))
    outside = len(d)
    if b'"' in block:
        q = np.flatnonzero(arr == 34)
        # An odd number of quotes on a line: the exact splitter joins lines (or rejects an
        # unterminated quote) where DuckDB may read a literal quote in an unquoted value.
        if (np.searchsorted(q, nl) & 1).any() or _has_quote_space(arr, q, delim):
            return None
        # A pair's opening quote must start a value (after a delimiter or at a line's start)
        # or continue a doubled quote; a quote inside an unquoted value (a"b) is text for both
        # parsers and would upset the pairing below, so such a file goes to the exact splitter.
        opens = q[0::2]
        prev = arr[np.maximum(opens - 1, 0)]
        if not ((opens == 0) | (prev == 10) | (prev == ord(delim)) | (prev == 34)).all():
            return None
        # Quotes pair up line by line (even counts): delimiters between a pair are quoted.
        before = np.searchsorted(d, q)
        outside -= int((before[1::2] - before[0::2]).sum())
    # As many values on the lines as the header has. DuckDB, even in strict mode, reads a line
    # with one empty value too many (``1,2,3,`` under ``a,b,c``) as three values, where the
    # exact splitter rejects it; a line with too few or other extra values fails DuckDB's read
    # (the exact splitter then takes the file). So if no line has too few, the total proves
    # that none has too many.
    if outside != (width - 1) * len(nl):
        return None
    return len(nl)


def _has_quote_space(arr: np.ndarray, quotes: np.ndarray, delim: str) -> bool:
    """Whether white space separates a quote from a delimiter or a line's edge (``a, "b"``,
    ``"b" ,c``). Vectorised over the quotes; a run of several spaces is walked one by one."""
    ws = _SPACE if delim != "\t" else _SPACE[:1]
    edge = np.array([10, 13, ord(delim)], np.uint8)
    padded = np.concatenate([np.full(2, 10, np.uint8), arr, np.full(2, 10, np.uint8)])
    q = quotes + 2  # positions in ``padded`` (a newline on either side)
    for step in (-1, 1):
        near = q[np.isin(padded[q + step], ws)]
        if not near.size:
            continue
        beyond = padded[near + 2 * step]
        if np.isin(beyond, edge).any():
            return True
        for i in near[np.isin(beyond, ws)].tolist():  # two or more spaces: walk them
            j = i + step
            while padded[j] in ws:
                j += step
            if padded[j] in edge:
                return True
    return False


# --------------------------------------------------------------------------------- JSON kinds


def _json_value(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v if v != "" else None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, float):
        return repr(v)
    return json.dumps(v, default=_json_default, separators=(",", ":"))


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return int(o) if o == o.to_integral_value() and "." not in str(o) else float(o)
    raise TypeError(type(o).__name__)


# A \uD800–\uDFFF escape that is not half of a high+low pair (JSON text, as bytes).
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")
SURROGATE_REASON = ("a key or value holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape "
                    "without its pair), which is not Unicode text; fix the JSON encoding at the "
                    "source")


def _has_lone_surrogate(obj: Any) -> bool:
    """Whether a parsed JSON value holds a string that cannot be encoded as UTF-8."""
    try:
        json.dumps(obj, default=_json_default, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _file_has_lone_surrogate(path: Path, compression: str | None) -> bool:
    """A cheap scan of the raw bytes for a lone surrogate escape (false positives only cost
    speed: the rows themselves are checked)."""
    stream, _ = open_binary(path, compression)
    tail = b""
    try:
        while block := stream.read(1 << 22):
            if _LONE_SURROGATE.search(tail + block):
                return True
            tail = block[-12:]
    except (OSError, EOFError) as exc:
        raise read_failure(path, exc) from None
    finally:
        stream.close()
    return False


#: Distinct key sequences whose column plan a JSON reader remembers (records of one producer
#: share a handful; the bound keeps memory flat on a file where every record differs).
_MAX_KEY_PLANS = 4096


class _RecordBatcher:
    """Collects dict records into canonical columns plus an attributes JSON column."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.resolver = RecordKeyResolver(source.mapping)
        self._plans: dict[tuple[str, ...], tuple[dict[str, str], list[str], str | None]] = {}
        self.reset()

    def reset(self) -> None:
        self.cols: dict[str, list] = {c: [] for c in CANONICAL}
        self._columns = [(c, self.cols[c]) for c in CANONICAL]
        self.attrs: list[str | None] = []
        self.lines: list[int] = []
        self.raw: list[str | None] = []
        self.pre: list[str | None] = []

    def __len__(self) -> int:
        return len(self.lines)

    def add(self, line: int, record: dict | None, raw: str, reason: str | None = None) -> None:
        self.source.stats.records += 1
        self.lines.append(line)
        plan = None
        if record is not None and reason is None:
            keys = tuple(record)
            plan = self._plans.get(keys)
            if plan is None:
                plan = self._plan(keys)
                if len(self._plans) < _MAX_KEY_PLANS:  # a file of ever-new keys stays flat
                    self._plans[keys] = plan
            reason = plan[2]
        if reason is None and plan is not None:
            fed, extras = plan[0], plan[1]
            self.source.stats.seen_canonical.update(fed)
            for c, col in self._columns:
                key = fed.get(c)
                col.append(None if key is None else _json_value(record[key]))  # type: ignore[index]
            self.attrs.append(json.dumps({k: record[k] for k in extras},  # type: ignore[index]
                                         default=_json_default, ensure_ascii=False,
                                         separators=(",", ":")) if extras else None)
        else:
            for _, col in self._columns:
                col.append(None)
            self.attrs.append(None)
        self.pre.append(reason)
        self.raw.append(raw)

    def _plan(self, keys: tuple[str, ...]) -> tuple[dict[str, str], list[str], str | None]:
        """What a record with these keys (in this order) feeds: {canonical: key}, the keys kept
        in attributes (in the order they are written), or the reason two keys collide.

        Decided once per distinct key sequence: the outcome depends on the keys alone (their
        names and order), never on the values.
        """
        row: dict[str, str] = {}
        prio: dict[str, tuple[int, str]] = {}
        extras: list[str] = []
        fed: list[str] = []  # keys that feed at least one canonical column
        for key in keys:
            targets = self.resolver.resolve(key)
            if not targets:
                extras.append(key)
                continue
            fed.append(key)
            for canonical, p in targets:
                if canonical in prio:
                    old_p, old_key = prio[canonical]
                    if p == old_p:
                        return {}, [], (f"keys {old_key!r} and {key!r} both map to {canonical}; "
                                        f"choose one with --map {canonical}={old_key}")
                    if p > old_p:
                        continue
                prio[canonical] = (p, key)
                row[canonical] = key
        # A key that lost every canonical column it could feed is kept as an extra.
        winners = {key for _, key in prio.values()}
        extras += [key for key in fed if key not in winners]
        return row, extras, None

    def table(self) -> pa.Table:
        t = _table(self.cols, [], self.lines, self.raw, self.pre, self.attrs)
        self.reset()
        return t


def _check_required_seen(source: Source) -> None:
    if source.stats.records == 0:
        return
    missing = missing_required(source.stats.seen_canonical, source.owner_given)
    if missing:
        raise ValidationError(
            f"{source.path}: " + missing_columns_message(missing, sorted(source.stats.seen_canonical)),
            {"missing": missing})


class JsonLinesSource(Source):
    """JSON Lines: one JSON object per line; numbers are read as exact decimals."""

    format = "jsonl"

    def chunks(self) -> Iterator[pa.Table]:
        stream, self._counter = open_binary(self.path, self.compression)
        batch = _RecordBatcher(self)
        try:
            yield from self._read(enumerate(stream, start=1), batch)
            if len(batch):
                yield batch.table()
        except (OSError, EOFError) as exc:
            raise read_failure(self.path, exc) from None
        finally:
            stream.close()

    def _read(self, lines: Iterable[tuple[int, bytes]], batch: _RecordBatcher
              ) -> Iterator[pa.Table]:
        """Add numbered lines to ``batch`` one record per line (a blank line is counted, not
        a record); yield a chunk each time it is full."""
        for n, line in lines:
            self.stats.physical_lines += 1
            if not line.strip():
                self.stats.blank_lines += 1
                continue
            raw = _text(line)
            try:
                obj = json.loads(line, parse_float=Decimal)
            except (ValueError, UnicodeDecodeError) as exc:
                batch.add(n, None, raw, f"line is not valid JSON ({exc}); fix or remove it")
            else:
                if isinstance(obj, dict) and obj.get("type") == "Feature":
                    obj = _feature_record(obj)
                if b"\\u" in line and _LONE_SURROGATE.search(line) \
                        and _has_lone_surrogate(obj):
                    batch.add(n, None, raw, SURROGATE_REASON)
                elif isinstance(obj, dict):
                    batch.add(n, obj, raw)
                else:
                    batch.add(n, None, raw, "line is JSON but not an object; each line must "
                                            "be one {...} event")
            if len(batch) >= CHUNK_ROWS:
                yield batch.table()

    def region_chunks(self, layout: JsonlLayout) -> Iterator[pa.Table]:
        """Chunks of the records on the lines :meth:`fast_scan` could not vouch for (the runs
        of ``layout`` marked unvouched), read by :meth:`_read` exactly as :meth:`chunks` reads
        them, each with its own line; adds what was read to ``layout.tally``.

        A JSON Lines record is one physical line and :meth:`chunks` reads each line on its
        own, so a region is exactly its unvouched lines: nothing before it changes how they
        read, and they change nothing after them. Plain files only (seeks to each region).
        """
        batch = _RecordBatcher(self)
        tally = layout.tally = RegionTally()
        with open(self.path, "rb") as f:
            for a, a_off, b, b_off, vouched in layout.stretches():
                if vouched:
                    continue
                f.seek(a_off)
                before = (self.stats.records, self.stats.blank_lines)
                yield from self._read(_numbered_lines(f, a, b_off - a_off, self.path), batch)
                # The scan's count of the region's lines; what the reader made of them must
                # add up to it (checked by the ingest's line accounting).
                tally.regions += 1
                tally.lines += b - a
                tally.records += self.stats.records - before[0]
                tally.blank_lines += self.stats.blank_lines - before[1]
        if len(batch):
            yield batch.table()

    def finish(self) -> None:
        _check_required_seen(self)

    def fast_scan(self) -> JsonlLayout | None:
        """One pass over the raw bytes: which lines may DuckDB's JSON reader stage in bulk?

        A line is vouched for only when it is one ``{...}`` object that DuckDB and
        :meth:`chunks` read alike as far as bytes can tell: no blank line; each line starts with
        ``{`` and ends with ``}`` (no white space around, no CR); no control byte (a raw one is
        invalid JSON for Python, and a key or value cannot hold one without a ``\\u`` escape);
        no ``\\u`` escape at all (lone surrogates, NUL and escaped key names stay with Python);
        no ``\\/`` escape; no ``"Feature"`` (a GeoJSON feature per line is flattened by
        :meth:`chunks`); no ``,`` before a closing ``}`` or ``]`` (DuckDB accepts a trailing
        comma, Python does not); valid UTF-8. False alarms (such text inside a string) only cost
        speed.

        Counts physical lines by newline bytes (the independent count). Which keys the records
        hold is asked of DuckDB afterwards (:func:`usagectl.store.ingest._stage_jsonl_bulk`).
        Blocks it cannot vouch for (re-vouched in ``REGION_PIECE_BYTES`` pieces, see
        :func:`_scan_runs`) are regions, listed in ``runs``, that :meth:`region_chunks` reads;
        the vouched lines are listed in ``spans``. Returns ``None`` when the file must go to
        :meth:`chunks` whole (too many regions, any in a compressed file, a line over 4 MiB).
        """
        stream, self._counter = open_binary(self.path, self.compression)
        flags: set[str] = set()
        try:
            scan = _scan_runs(stream, lambda b: _vouch_jsonl(b, flags), 0, 0, self.compression)
        except (OSError, EOFError) as exc:
            raise read_failure(self.path, exc) from None
        finally:
            stream.close()
        if scan is None or not scan[0]:
            return None
        lines, size, runs = scan
        layout = JsonlLayout(lines=lines, url_like="url" in flags, runs=runs, size=size)
        layout.spans = [(a, b, a_off, b_off) for a, a_off, b, b_off, vouched in layout.stretches()
                        if vouched] if runs else []
        return layout


_TRAILING_COMMA = re.compile(rb",[ \t]*[}\]]")


@dataclass
class JsonlLayout:
    """What :meth:`JsonLinesSource.fast_scan` found: a file DuckDB's JSON reader may stage."""

    lines: int  # physical lines, counted by newline bytes
    url_like: bool = True  # a ?, # or :// in a vouched line
    # As in CsvLayout: the runs of blocks alike (empty: every line is vouched), the size; the
    # vouched lines [first, end) at bytes [lo, hi) (set by fast_scan), the regions' tally.
    runs: list[tuple[int, int, bool]] = field(default_factory=list)
    size: int = 0
    header_bytes: int = 0
    spans: list[tuple[int, int, int, int]] = field(default_factory=list)
    tally: RegionTally | None = None

    def stretches(self) -> Iterator[tuple[int, int, int, int, bool]]:
        """(first line, first byte, end line, end byte, vouched) of each run."""
        ends = [(r[0], r[1]) for r in self.runs[1:]] + [(self.lines + 1, self.size)]
        for (a, a_off, vouched), (b, b_off) in zip(self.runs, ends):
            yield a, a_off, b, b_off, vouched


def _vouch_jsonl(block: bytes, flags: set[str]) -> int | None:
    """Whether whole lines ``block`` (ending in a newline) pass :meth:`JsonLinesSource.fast_scan`:
    their number, or ``None``."""
    arr = np.frombuffer(block, np.uint8)
    nl = np.flatnonzero(arr == 10)
    if ((arr < 32) & (arr != 10)).any():
        return None
    if b"\\u" in block or b"\\/" in block or b'"Feature"' in block \
            or _TRAILING_COMMA.search(block):
        return None
    if arr[0] != 123 or (arr[nl[:-1] + 1] != 123).any() or (nl == 0).any() \
            or (arr[nl - 1] != 125).any():
        return None
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if b"?" in block or b"#" in block or b"://" in block:
        flags.add("url")
    return len(nl)


def _feature_record(feature: dict) -> dict:
    """A GeoJSON Feature as a flat record: properties, then geometry and the feature id."""
    return _feature_record_text(feature)[0]


def _feature_record_text(feature: dict) -> tuple[dict, str | None]:
    """:func:`_feature_record`, and the JSON text it wrote for the feature's geometry (None when
    the record's geometry is not that text)."""
    props = feature.get("properties") or {}
    record = dict(props) if isinstance(props, dict) else {"properties": props}
    geom = feature.get("geometry")
    text = None
    if "geometry" not in record:
        text = json.dumps(geom, default=_json_default) if geom is not None else None
        record["geometry"] = text
    if "id" in feature and "id" not in record and "event_id" not in record:
        record["id"] = feature["id"]
    return record, text


def _feature_raw(feature: dict, geometry_text: str | None) -> str:
    """``json.dumps(feature, default=_json_default, ensure_ascii=False)``, reusing the geometry
    text already written for the record (the coordinates are most of a feature's text, and
    dumping them twice was a third of the GeoJSON reader's time).

    The reuse is exact: without ``\\u`` escapes the ASCII-only text equals the one that keeps
    non-ASCII characters, and a dict's text is its members' texts joined with the default
    separators. Otherwise the feature is dumped whole, as before.
    """
    if geometry_text is None or "\\u" in geometry_text:
        return json.dumps(feature, default=_json_default, ensure_ascii=False)
    parts = []
    for key, value in feature.items():
        text = geometry_text if key == "geometry" else json.dumps(
            value, default=_json_default, ensure_ascii=False)
        parts.append(f"{json.dumps(key, ensure_ascii=False)}: {text}")
    return "{" + ", ".join(parts) + "}"


class GeoJsonSource(Source):
    """A GeoJSON FeatureCollection, streamed feature by feature (ijson, exact decimals).

    RFC 7946 GeoJSON is lon/lat WGS84. A legacy (2008) ``crs`` member naming another CRS is
    honoured when it appears before ``features``; ``--crs`` overrides both.
    """

    format = "geojson"
    _array = False  # a top-level JSON array of event objects instead of a FeatureCollection

    def chunks(self) -> Iterator[pa.Table]:
        import ijson
        from ijson.common import ObjectBuilder

        stream, self._counter = open_binary(self.path, self.compression)
        batch = _RecordBatcher(self)
        top_type = None
        builder: ObjectBuilder | None = None
        depth = 0
        crs_builder: ObjectBuilder | None = None
        n = 0
        try:
            # ijson's C backend turns a lone surrogate escape into "?" silently; when the file
            # holds one, the pure-Python backend (slower) keeps it, and that row is rejected.
            self._check_surrogates = _file_has_lone_surrogate(self.path, self.compression)
            parse = ijson.get_backend("python").parse if self._check_surrogates else ijson.parse
            for prefix, event, value in parse(stream, use_float=False):
                if builder is not None:
                    builder.event(event, value)
                    if event in ("start_map", "start_array"):
                        depth += 1
                    elif event in ("end_map", "end_array"):
                        depth -= 1
                    if depth == 0:
                        n += 1
                        self._add_feature(batch, n, builder.value)
                        builder = None
                        if len(batch) >= CHUNK_ROWS:
                            yield batch.table()
                    continue
                if prefix == "" and event == "start_array":
                    top_type, self._array, self.format = "array", True, "json"
                    continue
                if prefix == "features.item" or (prefix == "item" and top_type == "array"):
                    if event in ("start_map", "start_array"):
                        builder, depth = ObjectBuilder(), 1
                        builder.event(event, value)
                    else:  # a scalar where a Feature belongs
                        n += 1
                        self._add_feature(batch, n, value)
                    continue
                if prefix == "type" and event == "string":
                    top_type = value
                elif prefix == "crs" and event == "start_map":
                    crs_builder = ObjectBuilder()
                    crs_builder.event(event, value)
                elif crs_builder is not None and prefix.startswith("crs"):
                    crs_builder.event(event, value)
                    if prefix == "crs" and event == "end_map":
                        self.declared_crs = _legacy_crs(crs_builder.value)
                        crs_builder = None
            if len(batch):
                yield batch.table()
        except ijson.JSONError as exc:
            raise ValidationError(f"{self.path}: not valid JSON ({exc}); nothing was ingested "
                                  "from this file") from None
        except (OSError, EOFError) as exc:
            raise read_failure(self.path, exc) from None
        finally:
            stream.close()
        if top_type not in ("FeatureCollection", "array"):
            raise ValidationError(f"{self.path}: not a GeoJSON FeatureCollection (type is "
                                  f"{top_type!r}) nor a JSON array of events; JSON Lines files "
                                  "should be named .jsonl")
        self.stats.physical_lines = 0

    _check_surrogates = False

    def _add_feature(self, batch: _RecordBatcher, n: int, obj: Any) -> None:
        if self._check_surrogates and _has_lone_surrogate(obj):
            raw = json.dumps(obj, default=_json_default)  # \ud800 escaped, as in the file
            batch.add(n, None, raw[:10_000], SURROGATE_REASON)
            return
        if isinstance(obj, dict) and obj.get("type") == "Feature":
            record, geometry_text = _feature_record_text(obj)
            batch.add(n, record, _feature_raw(obj, geometry_text)[:10_000])
            return
        raw = json.dumps(obj, default=_json_default, ensure_ascii=False)
        if self._array and isinstance(obj, dict):
            batch.add(n, obj, raw[:10_000])  # a JSON array of plain event objects
        elif self._array:
            batch.add(n, None, raw[:10_000], "array item is not a JSON object; each item must be "
                                             "one {...} event")
        else:
            batch.add(n, None, raw[:10_000], "features[] item is not a GeoJSON Feature")

    def finish(self) -> None:
        _check_required_seen(self)


def _legacy_crs(crs: Any) -> str | None:
    try:
        name = crs["properties"]["name"]
    except (KeyError, TypeError):
        return None
    if isinstance(name, str) and "CRS84" not in name.upper():
        return name
    return None


# ------------------------------------------------------------------------------------ Parquet


class ParquetSource(Source):
    """Parquet and GeoParquet (WKB geometry; the CRS comes from the ``geo`` metadata)."""

    format = "parquet"

    def __init__(self, path: Path, compression: str | None, mapping: dict[str, str],
                 owner_given: bool) -> None:
        super().__init__(path, compression, mapping, owner_given)
        import pyarrow.parquet as pq

        try:
            self._pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise ValidationError(f"{path}: not a readable Parquet file ({exc})") from None
        schema = self._pf.schema_arrow
        self.schema: pa.Schema = schema  # the Arrow types the chunks carry
        names = list(schema.names)
        geo = (schema.metadata or {}).get(b"geo")
        geo_column = None
        if geo:
            try:
                meta = json.loads(geo)
                geo_column = meta.get("primary_column")
                colmeta = meta.get("columns", {}).get(geo_column, {})
                enc = str(colmeta.get("encoding", "WKB")).upper()
                if enc != "WKB":
                    raise ValidationError(f"{path}: GeoParquet encoding {enc} is not supported; "
                                          "write the geometry as WKB")
                crs = colmeta.get("crs", "OGC:CRS84")
                if crs is not None:
                    self.declared_crs = json.dumps(crs) if isinstance(crs, dict) else str(crs)
            except (ValueError, AttributeError):
                raise ValidationError(f"{path}: unreadable GeoParquet 'geo' metadata") from None
        mapping = dict(mapping)
        if geo_column and "geometry" not in mapping and geo_column in names:
            mapping["geometry"] = geo_column
        plan = plan_columns(names, mapping)
        missing = missing_required(plan.canonical, owner_given)
        if missing:
            raise ValidationError(f"{path}: " + missing_columns_message(missing, names),
                                  {"missing": missing, "columns": names})
        self.plan: ColumnPlan = plan
        self.extras = plan.extras
        self.stats.seen_canonical = set(plan.canonical)
        self.expected_rows = self._pf.metadata.num_rows

    def chunks(self) -> Iterator[pa.Table]:
        plan = self.plan
        # One source column may feed several canonical columns (--map copies): read it once.
        source_cols = list(dict.fromkeys([*plan.canonical.values(), *plan.extras]))
        size = os.path.getsize(self.path)
        row = 0
        for rb in self._pf.iter_batches(batch_size=CHUNK_ROWS, columns=source_cols):
            t = pa.Table.from_batches([rb])
            n = t.num_rows
            t, bad_text = _without_invalid_text(t)
            t, bad_text = _without_repeated_map_keys(t, bad_text)
            arrays: dict[str, Any] = {}
            for c in CANONICAL:
                src = plan.canonical.get(c)
                arrays["c_" + c] = t.column(src) if src else pa.nulls(n, pa.string())
            for i, e in enumerate(plan.extras):
                arrays[f"x_{i}"] = t.column(e)
            arrays["_line"] = pa.array(range(row + 1, row + n + 1), pa.int64())
            arrays["_raw"] = pa.nulls(n, pa.string())
            arrays["_pre_reason"] = (pa.array([bad_text.get(i) for i in range(n)], pa.string())
                                     if bad_text else pa.nulls(n, pa.string()))
            row += n
            self.stats.records += n
            self._consumed = int(size * row / max(self.expected_rows, 1))
            yield pa.table(arrays)

    def column_batches(self, name: str) -> Iterator[pa.Array]:
        """One source column, chunk by chunk, typed as :meth:`chunks` types it."""
        for rb in self._pf.iter_batches(batch_size=CHUNK_ROWS, columns=[name]):
            yield rb.column(0)

    def bytes_consumed(self) -> int:
        return getattr(self, "_consumed", 0)

    def finish(self) -> None:
        if self.stats.records != self.expected_rows:
            raise ValidationError(f"{self.path}: read {self.stats.records} rows but the Parquet "
                                  f"footer declares {self.expected_rows}; the file is damaged")


def _without_invalid_text(t: pa.Table) -> tuple[pa.Table, dict[int, str]]:
    """A Parquet chunk whose text (at any depth) is valid UTF-8, and the reject reason of each
    row that was not, by row index.

    Parquet's string type promises UTF-8 but a writer can put any bytes there, and DuckDB's
    Arrow scan fails with a FATAL error on them (the database it scans into is invalidated).
    Arrow's full validation finds such a column; only then is each of its rows decoded, the bad
    rows get a reason naming the column and their value is set to NULL (the row is a reject)."""
    import pyarrow.compute as pc

    reasons: dict[int, str] = {}
    for name in t.column_names:
        col = t.column(name)
        try:
            col.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        arr = col.combine_chunks()
        bad = [False] * len(arr)
        for i in range(len(arr)):
            try:
                arr[i].as_py()  # decodes every string of the row, at any depth
            except (UnicodeDecodeError, pa.ArrowInvalid):
                bad[i] = True
                detail = ""
                if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
                    raw = arr.view(pa.large_binary() if pa.types.is_large_string(arr.type)
                                   else pa.binary())[i].as_py()
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        detail = f" (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
                reasons.setdefault(i, f"column {name!r} holds text that is not valid UTF-8"
                                      f"{detail}; re-export the file with UTF-8 text")
        cleaned = pc.if_else(pa.array(bad), pa.scalar(None, arr.type), arr)
        t = t.set_column(t.column_names.index(name), name, cleaned)
    return t, reasons


def has_map(t: pa.DataType) -> bool:
    """Whether a map type sits anywhere in ``t``."""
    if pa.types.is_map(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return has_map(t.value_type)
    if pa.types.is_struct(t):
        return any(has_map(t.field(i).type) for i in range(t.num_fields))
    return False


def _repeated_key(value: Any, t: pa.DataType) -> Any:
    """The first key a map inside ``value`` (a row's Python value of type ``t``) holds twice,
    or None."""
    if value is None:
        return None
    if pa.types.is_map(t):
        seen: set[Any] = set()
        for key, item in value:  # a map's entries, as (key, value) pairs
            if key in seen:
                return key
            seen.add(key)
            found = _repeated_key(item, t.item_type)
            if found is not None:
                return found
        return None
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return next((k for k in (_repeated_key(v, t.value_type) for v in value)
                     if k is not None), None)
    if pa.types.is_struct(t):
        return next((k for k in (_repeated_key(value.get(t.field(i).name), t.field(i).type)
                                 for i in range(t.num_fields)) if k is not None), None)
    return None


def repeated_map_keys(arr: pa.Array | pa.ChunkedArray) -> dict[int, Any]:
    """Row index → the key a map in that row holds twice, for a column with maps at any depth.

    Arrow lets a map repeat a key; DuckDB's maps refuse it (the whole scan fails). A map at the
    top level is checked in Arrow (entries per row against distinct keys per row); only the rows
    that repeat a key, or every row of a column with maps deeper down, are read in Python."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    rows: Any = range(len(arr))
    if pa.types.is_map(arr.type) and not has_map(arr.type.item_type):
        import pyarrow.compute as pc

        # The keys of each row as a list array (offsets index the map's whole key buffer).
        keys = pa.ListArray.from_arrays(arr.offsets, arr.keys)
        flat = keys.flatten()
        if len(flat) == 0:
            return {}
        try:
            counts = pa.table({"row": pc.list_parent_indices(keys), "key": flat}) \
                .group_by("row").aggregate([("key", "count"), ("key", "count_distinct")])
        except pa.ArrowNotImplementedError:  # keys Arrow cannot count (nested): every row
            pass
        else:
            repeats = pc.not_equal(counts["key_count"], counts["key_count_distinct"])
            rows = counts["row"].filter(repeats).to_pylist()
    out: dict[int, Any] = {}
    for i in rows:
        key = _repeated_key(arr[i].as_py(), arr.type)
        if key is not None:
            out[i] = key
    return out


def _without_repeated_map_keys(t: pa.Table, reasons: dict[int, str]
                               ) -> tuple[pa.Table, dict[int, str]]:
    """``t`` with each row whose map repeats a key set to NULL in that column, and the row's
    reject reason (``reasons`` extended: an earlier reason of a row is kept)."""
    import pyarrow.compute as pc

    for name in t.column_names:
        col = t.column(name)
        if not has_map(col.type):
            continue
        repeated = repeated_map_keys(col)
        if not repeated:
            continue
        reasons = dict(reasons)
        for i, key in repeated.items():
            reasons.setdefault(i, f"column {name!r} holds a map with the key {key!r} twice "
                                  "(a map's keys must be unique); re-export the file with "
                                  "unique keys, or write the pairs as a list of structs")
        bad = pa.array([i in repeated for i in range(len(col))])
        cleaned = pc.if_else(bad, pa.scalar(None, col.type), col.combine_chunks())
        t = t.set_column(t.column_names.index(name), name, cleaned)
    return t, reasons


def open_source(path: Path, mapping: dict[str, str], owner_given: bool,
                fmt: str | None = None) -> Source:
    """Pick the reader for a file."""
    detected, compression = detect_format(path)
    fmt = fmt or detected
    if fmt in ("csv", "tsv"):
        return CsvSource(path, compression, mapping, owner_given,
                         delimiter="\t" if fmt == "tsv" else None)
    if fmt == "jsonl":
        return JsonLinesSource(path, compression, mapping, owner_given)
    if fmt == "geojson":
        return GeoJsonSource(path, compression, mapping, owner_given)
    if fmt == "parquet":
        return ParquetSource(path, compression, mapping, owner_given)
    raise ValidationError(f"{path}: unsupported format {fmt!r}")
