"""JSON and CSV of streamed rows a column at a time (docs/cli.md "Streaming large outputs").

The log's events and ``rejects``' rows come from DuckDB as Arrow record batches
(:class:`usagectl.store.streaming.Batches`). Formatting them row by row in Python — a dict per
row, then a few small strings per value — took a minute per million events; here each column
of a batch becomes the text of its cells with Arrow compute kernels, the cells are joined into
rows with the keys and separators around them, and a batch is handed on as one piece.

The text is exactly what :mod:`usagectl.renderers.jsonout` and
:mod:`usagectl.renderers.csvout` write for the same rows (tests/test_streaming.py compares the
bytes). Kernels cover the common cases; a cell they do not — a string holding a control
character or a line break, a float, a column of another type — is written by those modules'
own functions, cell by cell:

* JSON strings: ``\\``, ``"``, LF, CR and tab escaped by replacement; any other control
  character (``\\b``, ``\\f``, ``\\u0000``…) by ``json.dumps``.
* CSV text: the ``'`` before a formula start by a regular expression, quoting by another; a
  cell holding a line break by :func:`usagectl.renderers.csvout.neutralise`.
* Decimals: Arrow's fixed-point text without the trailing zeros (``27.310000000`` → ``27.31``,
  ``5.000000000`` → ``5``), which is :func:`usagectl.renderers.numbers.number_text`'s for at
  most 9 places; Arrow writes values under 1e-6 (and 0) in exponent form, those cells by
  ``number_text``.
* ``ts``: the instant in the contract's zone with Python's offset (``zone.utcoffset``, asked
  once per hour of a batch; an hour holding a transition instant by instant), written by
  Arrow as ``datetime.isoformat`` writes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from usagectl.renderers import csvout, jsonout
from usagectl.renderers.numbers import EXACT_PLACES, number_text
from usagectl.store.streaming import Batches

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Control characters JSON escapes that the kernels leave to ``json.dumps``.
_OTHER_CONTROL = r"[\x00-\x08\x0b-\x0c\x0e-\x1f]"
_JSON_REPLACE = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_FORMULA = r"^[=+\-@\t\r]"


def _bytes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a string array's values, and each value's start offset in them
    (values' starts; a NULL's value is empty)."""
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32, count=len(text) + 1,
                            offset=text.offset * 4)
    data = text.buffers()[2]
    whole = (np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]] if data is not None
             else np.zeros(0, np.uint8))
    return whole, offsets - offsets[0]


def _json_plain(text: pa.Array) -> bool:
    """No value holds a quote, a backslash or a control character (nothing to escape)."""
    if not pa.types.is_string(text.type):
        return False
    data, _ = _bytes(text)
    return not ((data < 0x20).any() or (data == 0x22).any() or (data == 0x5C).any())


#: Which first bytes start a formula (csvout's ``=``, ``+``, ``-``, ``@``, tab, CR).
_FORMULA_BYTE = np.zeros(256, bool)
_FORMULA_BYTE[[ord(c) for c in "=+-@\t\r"]] = True


def _csv_plain(text: pa.Array) -> bool:
    """No value starts a formula or holds a comma, a quote or a line break (csvout's text as
    it is, unquoted)."""
    if not pa.types.is_string(text.type):
        return False
    data, offsets = _bytes(text)
    if ((data == 0x2C) | (data == 0x22) | (data == 0x0A) | (data == 0x0D)).any():
        return False
    starts = offsets[:-1][offsets[1:] > offsets[:-1]]  # the non-empty values'
    return not _FORMULA_BYTE[data[starts]].any()


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _join(*parts: Any) -> pa.Array:
    """Element-wise concatenation of string arrays and literal strings."""
    return pc.binary_join_element_wise(*parts, "")


def _patched(texts: pa.Array, where: pa.Array, values: Sequence[Any],
             fmt: Callable[[Any], str]) -> pa.Array:
    """``texts`` with the cells where ``where`` holds replaced by ``fmt`` of their value."""
    if not pc.any(where).as_py():
        return texts
    out = texts.to_pylist()
    for i in pc.indices_nonzero(where).to_pylist():
        out[i] = fmt(values[i])
    return pa.array(out, pa.string())


def _timestamps(arr: pa.Array, zone: Any) -> pa.Array:
    """The ISO 8601 text of each instant in ``zone`` (null for NULL), as ``_event`` makes it
    (``datetime.astimezone(zone).isoformat()``).

    The zone's offset is asked of Python once per hour of the batch, at the hour's first and
    last microsecond; where the two differ (a transition inside that hour) each instant of the
    hour is converted by Python. Arrow adds the offset and writes the date and time."""
    micros = pc.cast(arr.cast(pa.timestamp("us", tz="UTC")), pa.int64())
    # Arrow's integer division truncates: from two days after 1970 on, every local time is
    # positive and truncating floors.
    if micros.null_count or len(micros) == 0 or pc.min(micros).as_py() < 2 * 24 * HOUR_US:
        return pa.array([None if us is None else _iso(us, zone) for us in micros.to_pylist()],
                        pa.string())
    hours = pc.divide(micros, _HOUR)
    unique = pc.unique(hours)
    offsets, texts = [], []
    for h in unique.to_pylist():
        first = (_EPOCH + timedelta(microseconds=h * HOUR_US)).astimezone(zone).utcoffset()
        last = (_EPOCH + timedelta(microseconds=(h + 1) * HOUR_US - 1)).astimezone(zone
                                                                                 ).utcoffset()
        same = first == last
        offsets.append(first // timedelta(microseconds=1) if same else 0)
        texts.append(_offset_text(first) if same else None)
    where = pc.index_in(hours, value_set=unique)
    offset = pc.take(pa.array(offsets, pa.int64()), where)
    suffix = pc.take(pa.array(texts, pa.string()), where)
    local_us = pc.add(micros, offset)
    # Arrow's text of a timestamp in seconds: ``2026-03-01 10:00:00`` (years 1970 to 9999).
    whole = pc.divide(local_us, _MILLION)
    seconds = pc.replace_substring(pc.cast(pc.cast(whole, pa.timestamp("s")), pa.string()),
                                   " ", "T", max_replacements=1)
    fraction = pc.subtract(local_us, pc.multiply(whole, _MILLION))
    fraction_text = pc.if_else(
        pc.equal(fraction, _ZERO), "",
        _join(".", pc.utf8_lpad(pc.cast(fraction, pa.string()), 6, "0")))
    text = _join(seconds, fraction_text, suffix)
    if suffix.null_count:  # an hour with a transition: those instants by Python
        return _patched(pc.fill_null(text, ""), pc.is_null(suffix), micros.to_pylist(),
                        lambda us: _iso(us, zone))
    return text


#: Microseconds in an hour.
HOUR_US = 3_600_000_000
_HOUR = pa.scalar(HOUR_US, pa.int64())
_MILLION = pa.scalar(1_000_000, pa.int64())
_ZERO = pa.scalar(0, pa.int64())


def _iso(us: int, zone: Any) -> str:
    return (_EPOCH + timedelta(microseconds=us)).astimezone(zone).isoformat()


def _offset_text(offset: timedelta) -> str:
    """The offset as ``isoformat`` ends a datetime with it: ``+01:00``, ``-03:30``, ``+00:53:28``."""
    text = datetime(2000, 1, 1, tzinfo=timezone(offset)).isoformat()
    return text[len("2000-01-01T00:00:00"):]


def _decimal_text(arr: pa.Array) -> pa.Array:
    """number_text of a decimal column (at most :data:`EXACT_PLACES` places)."""
    text = pc.cast(arr, pa.string())
    if arr.type.scale > 0:  # the fraction is always written: strip its zeros, then a bare point
        text = pc.replace_substring_regex(text, r"\.?0+$", "")
    # Arrow writes a value under 1e-6 in exponent form (0 as ``0E-9``): those by number_text.
    exponent = pc.match_substring(text, "E")
    values = arr.to_pylist() if pc.any(exponent).as_py() else ()
    return _patched(text, exponent, values, number_text)


def _fast_decimal(t: pa.DataType) -> bool:
    return pa.types.is_decimal(t) and 0 <= t.scale <= EXACT_PLACES


def _release() -> None:
    """Give the memory of a formatted batch back: Arrow's allocator keeps freed pages for
    reuse, and a batch's intermediate columns would otherwise stay on the process (measured:
    +125 MiB at 100k events, +55 MiB with this)."""
    pa.default_memory_pool().release_unused()


# -- JSON ----------------------------------------------------------------------------------------

def _json_strings(arr: pa.Array) -> pa.Array:
    """Quoted JSON strings (None stays null)."""
    text = arr.cast(pa.string())
    if _json_plain(text):
        return _join('"', text, '"')  # nothing to escape in the whole batch: one pass
    escaped = text
    for old, new in _JSON_REPLACE:
        escaped = pc.replace_substring(escaped, old, new)
    quoted = _join('"', escaped, '"')
    control = pc.match_substring_regex(text, _OTHER_CONTROL)
    values = text.to_pylist() if pc.any(control).as_py() else ()
    return _patched(quoted, control, values, lambda s: json.dumps(s, ensure_ascii=False))


def _json_cells(arr: pa.Array, key: str, zone: Any, level: int) -> pa.Array:
    """The JSON text of each value of a column, for a value at nesting ``level``."""
    t = arr.type
    if key == "ts" and zone is not None and pa.types.is_timestamp(t):
        out = _join('"', _timestamps(arr, zone), '"')
    elif _is_text(t):
        out = _json_strings(arr)
    elif pa.types.is_integer(t):
        out = pc.cast(arr, pa.string())
    elif pa.types.is_boolean(t):
        out = pc.if_else(arr, "true", "false")
    elif _fast_decimal(t):
        out = _decimal_text(arr)
    elif (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_text(t.value_type):
        out = _json_lists(arr, level)
    else:  # anything else as the row-by-row writer does it
        return pa.array(["".join(jsonout._encode(v, 2, level, False)) for v in arr.to_pylist()],
                        pa.string())
    return pc.fill_null(out, "null")


def _list_join(arr: pa.Array, items: pa.Array, sep: str, opening: str, closing: str
               ) -> pa.Array:
    """Each list's ``items`` (their text, flattened) joined: ``opening + … + closing``, ``[]``
    when empty, null when null."""
    lengths = pc.fill_null(pc.list_value_length(arr), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int64()),
                                pc.cumulative_sum(pc.cast(lengths, pa.int64()))])
    lists = pa.LargeListArray.from_arrays(offsets, items)
    body = _join(opening, pc.binary_join(lists, sep), closing)
    return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.string()),
                      pc.if_else(pc.equal(lengths, 0), "[]", body))


def _json_lists(arr: pa.Array, level: int) -> pa.Array:
    inner = "\n" + " " * (2 * (level + 1))
    items = pc.fill_null(_json_strings(pc.list_flatten(arr)), "null")
    return _list_join(arr, items, "," + inner, "[" + inner, "\n" + " " * (2 * level) + "]")


def json_array(stream: Batches[Any], level: int) -> Iterator[str]:
    """:func:`usagectl.renderers.jsonout._encode_stream`'s text of the stream's rows (dicts of
    its keys) at nesting ``level``: a piece per record batch."""
    keys, zone = stream.columns.keys, stream.columns.zone
    inner = "\n" + " " * (2 * (level + 1))
    sep = "," + inner
    item_inner = "\n" + " " * (2 * (level + 2))
    item_end = "\n" + " " * (2 * (level + 1)) + "}"
    labels = [("{" + item_inner if i == 0 else "," + item_inner) + jsonout._key(k) + ": "
              for i, k in enumerate(keys)]
    first = True
    for batch in stream.batches():
        parts: list[Any] = []
        for label, key, column in zip(labels, keys, batch.columns, strict=True):
            parts += [label, _json_cells(column, key, zone, level + 2)]
        items = _join(*parts, item_end)
        text = ("[" + inner if first else sep) + sep.join(items.to_pylist())
        del parts, items
        _release()
        yield text
        first = False
    yield "[]" if first else "\n" + " " * (2 * level) + "]"


# -- CSV -----------------------------------------------------------------------------------------

def _csv_text(text: pa.Array) -> pa.Array:
    """csvout.cell of text values (None → empty), quoted when they need it."""
    if _csv_plain(text):
        return pc.fill_null(text, "")  # no formula start, line break, comma or quote: one pass
    return _quoted(_neutralised(text))


def _neutralised(text: pa.Array) -> pa.Array:
    """csvout.cell of text values (None → empty), before quoting."""
    formula = pc.match_substring_regex(text, _FORMULA)
    out = pc.if_else(formula, _join("'", text), text) if pc.any(formula).as_py() else text
    breaks = pc.match_substring_regex(text, r"[\r\n]")
    if pc.any(breaks).as_py():
        out = _patched(out, breaks, text.to_pylist(), csvout.neutralise)
    return pc.fill_null(out, "")


def _csv_cells(arr: pa.Array, key: str, zone: Any) -> pa.Array:
    """csvout.cell of each value of a column, quoted when it needs it (csvout._quoted)."""
    t = arr.type
    if key == "ts" and zone is not None and pa.types.is_timestamp(t):
        return pc.fill_null(_timestamps(arr, zone), "")  # no formula start, nothing to quote
    if _is_text(t):
        return _csv_text(arr.cast(pa.string()))
    # Numbers and booleans never hold a comma, a quote or a line break: never quoted.
    if pa.types.is_integer(t):
        return pc.fill_null(pc.cast(arr, pa.string()), "")
    if pa.types.is_boolean(t):
        return pc.fill_null(pc.if_else(arr, "true", "false"), "")
    if _fast_decimal(t):
        return pc.fill_null(_decimal_text(arr), "")
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_text(t.value_type):
        items = pc.fill_null(_json_strings(pc.list_flatten(arr)), "null")
        out = _list_join(arr, items, ", ", "[", "]")
    else:
        out = pa.array([csvout.cell(v) for v in arr.to_pylist()], pa.string())
    return _quoted(pc.fill_null(out, ""))


def _quoted(text: pa.Array) -> pa.Array:
    """csvout._quoted of each cell."""
    needs = pc.match_substring_regex(text, r'[,"\r\n]')
    if not pc.any(needs).as_py():
        return text
    return pc.if_else(needs, _join('"', pc.replace_substring(text, '"', '""'), '"'), text)


def csv_lines(stream: Batches[Any], columns: Sequence[str], fixed: dict[str, Any]
              ) -> Iterator[tuple[str, int]]:
    """The CSV lines of the stream's rows, without the header: ``(text, rows)`` per record
    batch. ``fixed`` holds the values of columns that are not the stream's (the same in every
    row); the stream's own keys win over them, as in ``{**fixed, **row}``."""
    keys, zone = stream.columns.keys, stream.columns.zone
    at = {k: i for i, k in enumerate(keys)}
    for batch in stream.batches():
        parts: list[Any] = []
        for c in columns:
            if parts:
                parts.append(",")
            if c in at:
                parts.append(_csv_cells(batch.column(at[c]), c, zone))
            else:
                parts.append(csvout._quoted(csvout.cell(fixed.get(c))))
        parts.append("\n")
        merged: list[Any] = []  # adjacent literal texts (fixed columns, commas) as one
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        lines = _join(*merged)
        if len(columns) == 1:  # a lone empty field would read back as a blank line
            lines = pc.if_else(pc.equal(lines, "\n"), '""\n', lines)
        text = "".join(lines.to_pylist())
        del parts, lines
        _release()
        yield text, batch.num_rows
