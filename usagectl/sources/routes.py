"""Request URLs: endpoint templates and the fields a URL carries (SPEC §3.1, ``ingest --route``).

A gateway logs ``GET /datasets/12345?indicators=964,897,962``. With
``--route '/datasets/{dataset_id}?indicators={indicator_ids}'`` that row's endpoint becomes
``/datasets/{dataset_id}``, its ``dataset_id`` 12345 and its ``indicator_ids`` [964, 897, 962];
the URL as logged is kept in the event's attributes under :data:`RAW_ENDPOINT_KEY`. Never by
guessing: without a matching route the endpoint is only reduced to its path (query string and
fragment dropped, a full URL reduced to its path), and no field is filled.

Matching ignores one trailing slash on either side (``/datasets/777/`` matches
``/datasets/{dataset_id}``, and ``/files/{resource_id}/`` matches ``/files/9``) and drops path
parameters from every segment (``/datasets/787;jsessionid=1`` captures ``787``; RFC 3986 §3.3).

Decoding follows :mod:`urllib.parse`: a path segment is percent-decoded (``unquote``), a query
name or value is form-decoded (``unquote_plus``: ``+`` is a space). A list field splits a value
on its literal commas before decoding, so ``%2C`` is a comma inside an id, not a separator.
Invalid UTF-8 after decoding is a reject reason, never a replacement character.

Work is done once per distinct endpoint value of a chunk (Arrow ``dictionary_encode``), and
chunks whose endpoints hold no ``?``, ``#`` or ``://`` pass through without any Python loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from usagectl.errors import UsageError
from usagectl.sources.columns import CANONICAL

#: Attribute key holding the endpoint as logged, when the stored endpoint differs from it.
RAW_ENDPOINT_KEY = "raw_endpoint"
#: Fields a route may fill: the identifiers a URL carries (text fields, and the indicator list).
ROUTE_FIELDS: tuple[str, ...] = ("event_id", "owner_id", "user_id", "org_id", "product",
                                 "resource_id", "method", "operation", "dataset_id",
                                 "indicator_ids", "session_id", "request_id")
LIST_FIELDS = frozenset({"indicator_ids"})

_CAPTURE = re.compile(r"\{([^{}]*)\}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_NEEDS_WORK = r"[?#]|://"


@dataclass(frozen=True)
class Route:
    """One parsed ``--route`` template."""

    template: str
    path: str  # the template's path: what a matching row's endpoint becomes
    segments: tuple[tuple[str, str | None], ...]  # (literal, None) or ("", field)
    query: tuple[tuple[str, str], ...]  # (parameter name, field)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for _, f in self.segments if f) + tuple(f for _, f in self.query)


def _valid_names() -> str:
    return ", ".join(ROUTE_FIELDS)


def _field_problem(template: str, name: str) -> str | None:
    if name in ROUTE_FIELDS:
        return None
    return f"--route {template!r}: {name!r} is not a field a route can fill"


def parse_routes(templates: Iterable[str]) -> list[Route]:
    """Parse and check ``--route`` templates; every problem at once, as a usage error."""
    routes, problems = [], []
    for template in templates:
        route, errs = _parse_one(template)
        problems += errs
        if route is not None:
            routes.append(route)
    if problems:
        message = ("; ".join(problems) + ". A route is /literal/{field}/…?param={field}&…; "
                   f"fields: {_valid_names()}")
        raise UsageError(message, {"problems": problems, "valid": list(ROUTE_FIELDS)})
    return routes


def _parse_one(template: str) -> tuple[Route | None, list[str]]:
    problems: list[str] = []
    path, sep, query = template.strip().partition("?")
    if not path.startswith("/"):
        problems.append(f"--route {template!r}: the path must start with /")
    if "#" in template:
        problems.append(f"--route {template!r}: a route has no #fragment")
    segments: list[tuple[str, str | None]] = []
    for seg in path.split("/")[1:]:
        if ";" in seg:
            problems.append(f"--route {template!r}: a route has no ;parameters (found {seg!r}); "
                            "they are ignored when URLs are matched")
            continue
        m = _CAPTURE.fullmatch(seg)
        if m:
            name = m.group(1).strip()
            if (p := _field_problem(template, name)) is not None:
                problems.append(p)
            segments.append(("", name))
        elif "{" in seg or "}" in seg:
            problems.append(f"--route {template!r}: {{field}} must be a whole path segment "
                            f"(found {seg!r})")
        else:
            segments.append((seg, None))
    params: list[tuple[str, str]] = []
    if sep:
        for part in query.split("&"):
            name, eq, value = part.partition("=")
            m = _CAPTURE.fullmatch(value)
            if not eq or not name or m is None:
                problems.append(f"--route {template!r}: query part {part!r} must be "
                                "name={field}")
                continue
            field = m.group(1).strip()
            if (p := _field_problem(template, field)) is not None:
                problems.append(p)
            params.append((unquote_plus(name), field))
    if len(segments) > 1 and segments[-1] == ("", None):
        segments.pop()  # a trailing slash does not matter (see _segments)
    fields = [f for _, f in segments if f] + [f for _, f in params]
    for twice in sorted({f for f in fields if fields.count(f) > 1}):
        problems.append(f"--route {template!r}: {twice} is captured twice")
    if problems:
        return None, problems
    return Route(template.strip(), path, tuple(segments), tuple(params)), []


@dataclass
class Routed:
    """What one endpoint value becomes."""

    endpoint: str | None
    raw: str | None = None  # the value as logged, when endpoint differs from it
    route: str | None = None  # the template that matched
    values: dict[str, str] | None = None  # field -> text (a list field: JSON array text)
    reason: str | None = None


def _split_url(value: str) -> tuple[str, str]:
    """(path, query) of an endpoint value: a full URL keeps only its path ('/' when empty)."""
    if _SCHEME.match(value):
        parts = urlsplit(value)
        return parts.path or "/", parts.query
    path, _, query = value.partition("#")[0].partition("?")
    return path, query


def _segments(path: str) -> list[str] | None:
    """A path's segments as routes match them (None when it is not an absolute path).

    Path parameters are dropped from every segment (``787;jsessionid=1`` → ``787``: RFC 3986
    §3.3 lets a segment carry ``;`` parameters, and they are never part of an id; an encoded
    ``%3B`` stays), and one trailing slash is ignored (``/datasets/777/`` is ``/datasets/777``;
    templates drop theirs the same way).
    """
    if not path.startswith("/"):
        return None
    segs = [seg.split(";", 1)[0] for seg in path.split("/")[1:]]
    if len(segs) > 1 and segs[-1] == "":
        segs.pop()
    return segs


def route_endpoint(value: str, routes: list[Route]) -> Routed:
    """Apply the first matching route to one endpoint value (the staging SQL fills/checks)."""
    v = value.strip(" ")  # as the staging SQL's trim()
    path, query = _split_url(v)
    raw = v if path != v else None
    segs = _segments(path)
    for route in routes:
        if segs is None or len(segs) != len(route.segments):
            continue
        if any(field is None and lit != seg or field is not None and seg == ""
               for (lit, field), seg in zip(route.segments, segs)):
            continue
        try:
            values = _captures(route, segs, query)
        except UnicodeDecodeError as exc:
            return Routed(route.path, v, route.template, None,
                          f"endpoint {v[:200]} has percent-encoding that is not valid UTF-8 "
                          f"({exc.reason}); fix the URL at the source or drop --route "
                          f"{route.template}")
        except ValueError as exc:
            return Routed(route.path, v, route.template, None, f"{exc}; fix the URL at the "
                          f"source or drop --route {route.template}")
        return Routed(route.path, v, route.template, values)
    return Routed(path, raw)


def _decode_list(texts: list[str], decode) -> str | None:  # type: ignore[no-untyped-def]
    items = [decode(part, errors="strict").strip(" ") for t in texts for part in t.split(",")]
    items = [i for i in items if i]
    return json.dumps(items, ensure_ascii=False) if items else None


def _captures(route: Route, segs: list[str], query: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for (_, field), seg in zip(route.segments, segs):
        if field is None:
            continue
        text = (_decode_list([seg], unquote) if field in LIST_FIELDS
                else unquote(seg, errors="strict").strip(" ") or None)
        if text is not None:
            values[field] = text
    if route.query and query:
        pairs = [p.partition("=") for p in query.split("&") if p]
        found: dict[str, list[str]] = {}
        for name, _, value in pairs:
            found.setdefault(unquote_plus(name, errors="strict"), []).append(value)
        for name, field in route.query:
            got = found.get(name)
            if not got:
                continue
            if field in LIST_FIELDS:
                text = _decode_list(got, unquote_plus)
            else:
                decoded = {unquote_plus(g, errors="strict").strip(" ") for g in got}
                if len(decoded) > 1:
                    raise ValueError(f"query parameter {name} appears with different values "
                                     f"({', '.join(sorted(decoded))[:200]})")
                text = decoded.pop() or None
            if text is not None:
                values[field] = text
    return values


def route_columns(column: pa.ChunkedArray | pa.Array, routes: list[Route]
                  ) -> dict[str, pa.Array]:
    """Chunk columns ``_r_endpoint``, ``_r_raw``, ``_r_route``, ``_r_reason`` and ``_r_<field>``
    for every field the routes capture; nulls where nothing changes."""
    fields = route_fields(routes)
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    nulls = {name: pa.nulls(n, pa.string())
             for name in ("_r_endpoint", "_r_raw", "_r_route", "_r_reason",
                          *(f"_r_{f}" for f in fields))}
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) \
            or arr.null_count == n:
        return nulls  # a numeric endpoint column holds no URL
    arr = arr.cast(pa.string())
    if not routes and not pc.any(pc.match_substring_regex(arr, _NEEDS_WORK)).as_py():
        return nulls  # the common case: plain paths, nothing to do
    encoded = pc.dictionary_encode(arr)
    results = [route_endpoint(v, routes) for v in encoded.dictionary.to_pylist()]
    indices = encoded.indices

    def column_of(get) -> pa.Array:  # type: ignore[no-untyped-def]
        return pa.array([get(r) for r in results], pa.string()).take(indices)

    out = {"_r_endpoint": column_of(lambda r: r.endpoint),
           "_r_raw": column_of(lambda r: r.raw),
           "_r_route": column_of(lambda r: r.route),
           "_r_reason": column_of(lambda r: r.reason)}
    for f in fields:
        out[f"_r_{f}"] = column_of(lambda r, f=f: (r.values or {}).get(f))
    return out


def route_fields(routes: list[Route]) -> list[str]:
    """The fields any of the routes captures, in canonical order."""
    captured = {f for r in routes for f in r.fields}
    return [c for c in CANONICAL if c in captured]
