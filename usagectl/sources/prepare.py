"""Chunks made ready for the staging SQL, read ahead on a worker thread (SPEC §3.3, issue 11).

A chunk is ready when its geometries are parsed, reprojected, checked and repaired
(``_geom``, ``_geom_reason``, ``_repaired``) and its endpoint matched against the ``--route``
templates (``_r_*`` columns). That work is Python and shapely; the staging SQL that follows is
DuckDB, which releases the GIL. :func:`read_ahead` runs the reader and this preparation one
chunk ahead on a worker thread, so that reading and geometry of chunk *k + 1* overlap the SQL
of chunk *k* on the second core. At most ``depth + 2`` chunks exist at once (one in the SQL,
``depth`` waiting, one being built), so memory stays bounded by the chunk size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

import pyarrow as pa
from pyproj import CRS

from usagectl.errors import ValidationError
from usagectl.sources.geometry import crs_label, parse_crs, process_geometries
from usagectl.sources.readers import Source
from usagectl.sources.routes import Route, route_columns

T = TypeVar("T")


def prepare_chunks(source: Source, user_crs: CRS | None, routes: list[Route],
                   chunks: Iterable[pa.Table] | None = None) -> Iterator[pa.Table]:
    """Every chunk of ``source`` (or the ``chunks`` given, read from it another way) with its
    geometry and route columns appended.

    The CRS is the one ``--crs`` gives, else the one the file declares (GeoParquet ``geo``
    metadata, a legacy GeoJSON ``crs`` member); both given and different fail the file.
    """
    crs = user_crs
    for chunk in source.chunks() if chunks is None else chunks:
        if source.declared_crs and crs is None:
            crs = parse_crs(source.declared_crs, f"{source.path}: the CRS the file declares,")
        elif source.declared_crs and user_crs is not None:
            declared = parse_crs(source.declared_crs, f"{source.path}: the CRS the file declares,")
            if declared is not None and not declared.equals(user_crs, ignore_axis_order=True):
                raise ValidationError(
                    f"{source.path}: the file declares CRS {crs_label(declared)} but --crs says "
                    f"{crs_label(user_crs)}; drop --crs or fix the file's metadata")
        gb = process_geometries(chunk.column("c_geometry"), crs)
        chunk = chunk.append_column("_geom", pa.array(gb.wkb, pa.binary()))
        chunk = chunk.append_column("_geom_reason", pa.array(gb.reason, pa.string()))
        chunk = chunk.append_column("_repaired", pa.array(gb.repaired, pa.bool_()))
        for name, column in route_columns(chunk.column("c_endpoint"), routes).items():
            chunk = chunk.append_column(name, column)
        yield chunk


_ITEM, _ERROR, _DONE = range(3)


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield what ``items`` yields, in order, producing it on a worker thread ``depth`` ahead.

    An exception raised by ``items`` is raised here, at the point the item would have come.
    When the consumer stops early (an error, an interrupt, ``close()``), the worker stops after
    the item it is building and ``items`` is closed on the worker (so a reader's ``finally``
    closes its file) before this generator returns.
    """
    q: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: int, value: object) -> bool:
        while not stop.is_set():
            try:
                q.put((kind, value), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(_ITEM, item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_ERROR, exc)
        else:
            put(_DONE, None)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="usagectl-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == _DONE:
                return
            if kind == _ERROR:
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
