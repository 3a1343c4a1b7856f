"""JSON output: the stable machine interface (SPEC §7).

Deterministic (keys in insertion order, no wall-clock values unless asked for), UTF-8, one
document per command, datetimes ISO 8601 with offset. Numbers are written by
:func:`usagectl.renderers.numbers.number_text`, the function CSV uses too: Decimals exactly and
without exponent (quotients to 6 decimals), so both formats show the same digits.

An iterator inside a document (the log's events, ``rejects``' rows) is written as an array
item by item: :func:`chunks` yields the document in pieces, so it is never held whole in memory,
and its text is exactly :func:`dumps`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from usagectl.renderers.numbers import number_text


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, date):
        return o.isoformat()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _key(k: Any) -> str:
    if isinstance(k, str):
        return _string(k)
    if k is None or isinstance(k, bool):
        return _string(json.dumps(k))
    if isinstance(k, (int, float, Decimal)):
        return _string(number_text(k) or "null")
    raise TypeError(f"keys must be strings, not {type(k).__name__}")


def _encode(o: Any, indent: int | None, level: int, sort_keys: bool) -> Iterator[str]:
    if o is None:
        yield "null"
    elif o is True:
        yield "true"
    elif o is False:
        yield "false"
    elif isinstance(o, str):
        yield _string(o)
    elif isinstance(o, (int, float, Decimal)):
        yield number_text(o) or "null"
    elif isinstance(o, Iterator):
        yield from _encode_stream(o, indent, level, sort_keys)
    elif isinstance(o, (list, dict)):
        items = (sorted(o.items(), key=lambda kv: str(kv[0])) if sort_keys else o.items()
                 ) if isinstance(o, dict) else o
        opening, closing = ("{", "}") if isinstance(o, dict) else ("[", "]")
        if not o:
            yield opening + closing
            return
        if indent is None:
            inner, sep, end = "", ", ", ""
        else:
            inner = "\n" + " " * (indent * (level + 1))
            sep, end = "," + inner, "\n" + " " * (indent * level)
        yield opening + inner
        for i, item in enumerate(items):
            if i:
                yield sep
            if isinstance(o, dict):
                yield _key(item[0]) + ": "
                item = item[1]
            yield from _encode(item, indent, level + 1, sort_keys)
        yield end + closing
    else:
        yield from _encode(_default(o), indent, level, sort_keys)


_END = object()


def _encode_stream(items: Iterator[Any], indent: int | None, level: int, sort_keys: bool
                   ) -> Iterator[str]:
    """An iterator as a JSON array, item by item (the same text as the list of its items); a
    stream of record batches a batch at a time (:mod:`usagectl.renderers.columnar`)."""
    from usagectl.store.streaming import Batches

    if isinstance(items, Batches) and items.untouched and indent == 2 and not sort_keys:
        from usagectl.renderers.columnar import json_array

        yield from json_array(items, level)
        return
    first = next(items, _END)
    if first is _END:
        yield "[]"
        return
    if indent is None:
        inner, sep, end = "", ", ", ""
    else:
        inner = "\n" + " " * (indent * (level + 1))
        sep, end = "," + inner, "\n" + " " * (indent * level)
    yield "[" + inner
    yield from _encode(first, indent, level + 1, sort_keys)
    for item in items:
        yield sep
        yield from _encode(item, indent, level + 1, sort_keys)
    yield end + "]"


#: Characters of JSON text gathered before :func:`chunks` hands them on.
CHUNK_CHARS = 1 << 16


def chunks(obj: Any, size: int = CHUNK_CHARS) -> Iterator[str]:
    """:func:`dumps` of ``obj`` in pieces of about ``size`` characters, the last one ending the
    document; iterators in ``obj`` are consumed as the pieces are taken."""
    buf: list[str] = []
    n = 0
    for part in _encode(obj, 2, 0, False):
        buf.append(part)
        n += len(part)
        if n >= size:
            yield "".join(buf)
            buf, n = [], 0
    buf.append("\n")
    yield "".join(buf)


def dumps(obj: Any) -> str:
    """Serialise for stdout (two-space indent), with a trailing newline."""
    return "".join(_encode(obj, 2, 0, False)) + "\n"


def inline(obj: Any, sort_keys: bool = False) -> str:
    """One line of JSON (a list or object inside a CSV cell)."""
    return "".join(_encode(obj, None, 0, sort_keys))
