"""``report`` and ``overlap``: what a contract period counts (SPEC §5, §6, §7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from usagectl.cli import DbOption, FormatOption, QuietOption, app, handle_errors, resolve
from usagectl.contracts import parse_as_of, resolve_period
from usagectl.errors import IOFailure, NotFoundError, ValidationError
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.files import atomic_write
from usagectl.renderers.console import Env
from usagectl.renderers.tables import print_first_fitting, print_fitting
from usagectl.renderers.text import safe
from usagectl.reports import views
from usagectl.store import contracts_repo
from usagectl.store.db import session

VIEWS = ("consolidated", "users", "daily", "log", "series", "top")
LOG_TABLE_ROWS = 50

ContractOption = Annotated[str, typer.Option("--contract", "-c", help="Contract id.",
                                             show_default=False)]
PeriodOption = Annotated[str | None, typer.Option(
    "--period", help="current (default), previous, an index, or a date inside the period.")]
AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", help="The moment taken as now (ISO 8601; default: the current time).")]
AsIngestedOption = Annotated[str | None, typer.Option(
    "--as-ingested-at", help="Only events ingested by then (reproduce an earlier invoice).")]
OutOption = Annotated[str | None, typer.Option("--out", "-o", help="Write to this file.")]


def write_output(env: Env, text: str, out: str | None) -> None:
    """Data to stdout, or atomically to a file (temp file in the same folder, fsync, rename)."""
    if out is None:
        env.write(text)
        return
    target = Path(out)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise IOFailure(f"cannot write {out}: folder {folder} does not exist")
    try:
        atomic_write(target, text.encode("utf-8"))
    except OSError as exc:
        raise IOFailure(f"cannot write {out}: {exc.strerror}") from None
    env.note(f"wrote {safe(out)}")


def _window(con, contract_id: str, period: str | None, as_of: str | None,  # type: ignore[no-untyped-def]
            as_ingested_at: str | None, contracts_file: str | None = None) -> views.Window:
    if contracts_file:
        from usagectl.contracts import load_contracts_file

        terms = {c.id: c for c in load_contracts_file(contracts_file)}
        if contract_id not in terms:
            raise NotFoundError(f"{contracts_file} has no contract {contract_id!r}; it has: "
                                f"{', '.join(sorted(terms)) or '(none)'}")
        contract = terms[contract_id]
    else:
        contract = contracts_repo.get_contract(con, contract_id)
    now = parse_as_of(as_of)
    ingested = parse_as_of(as_ingested_at) if as_ingested_at else None
    return views.make_window(contract, resolve_period(contract, period, now), now, ingested)


@app.command()
@handle_errors
def report(
    contract: ContractOption,
    view: Annotated[str, typer.Option(help="consolidated, users, daily, log, series or top.")] = "consolidated",
    period: PeriodOption = None,
    as_of: AsOfOption = None,
    as_ingested_at: AsIngestedOption = None,
    meter: Annotated[list[str] | None, typer.Option(help="Only this meter (repeatable).")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="daily: first day (YYYY-MM-DD).")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="daily: last day (YYYY-MM-DD).")] = None,
    bucket: Annotated[str, typer.Option(help="series: hour, day or month.")] = "day",
    group_by: Annotated[str, typer.Option("--group-by", help="top: endpoint, operation, "
                                          "resource_id, session_id, user_id or org_id.")] = "user_id",
    contracts_file: Annotated[str | None, typer.Option(
        "--contracts", help="What-if: price the same events under the terms in this TOML file "
                            "(not loaded into the database).")] = None,
    limit: Annotated[int | None, typer.Option(help="log: at most this many events; top: rows.")] = None,
    offset: Annotated[int, typer.Option(help="log: skip this many events.")] = 0,
    out: OutOption = None,
    db: DbOption = None,
    fmt: FormatOption = None,
    quiet: QuietOption = False,
) -> None:
    """Recompute what a contract period counts: totals, limits, overage and projection.

    Views: consolidated (every meter: owner and Σ-user totals, overlap, billed, limit, overage
    in cents, status, projection), users (each user's value per meter), daily (new
    consumption per local day, owner and Σ users; --from/--to for a range) and log (every
    counted event with what it consumed first: new_user, new_dataset, new_indicators; tables
    show the first 50, JSON and CSV every event unless --limit/--offset), series (new
    consumption per --bucket hour|day|month in the contract's zone) and top (a meter's value per
    --group-by, largest first). --contracts FILE prices the same events under other terms.
    --format html --out FILE writes one self-contained HTML report of every section.

    Example: usagectl report --contract acme-farms-2026 --as-of 2026-11-20 --format json
    """
    db, fmt, env = resolve(db, fmt, quiet, allowed=("table", "json", "csv", "html"))
    if fmt == "html":
        with session(db, read_only=True) as con:
            window = _window(con, contract, period, as_of, as_ingested_at, contracts_file)
            write_output(env, _html(con, window, meter), out)
        return
    if view not in VIEWS:
        raise ValidationError(f"--view {view!r} is not available; choose one of {', '.join(VIEWS)}")
    with session(db, read_only=True) as con:
        window = _window(con, contract, period, as_of, as_ingested_at, contracts_file)
        if view == "consolidated":
            doc = views.consolidated(con, window, meter)
        elif view == "users":
            doc = views.users_view(con, window, meter)
        elif view == "daily":
            doc = views.daily_view(con, window, meter, views.parse_day(date_from, "--from"),
                                   views.parse_day(date_to, "--to"))
        elif view == "log":
            page = limit if limit is not None else (LOG_TABLE_ROWS if fmt == "table" else None)
            doc = views.log_view(con, window, meter, page, offset)
        elif view == "series":
            doc = views.series_view(con, window, meter, bucket)
        else:
            doc = views.top_view(con, window, meter, group_by, limit)
    if fmt == "json":
        write_output(env, jsonout.dumps(doc), out)
    elif fmt == "csv":
        rows, cols = _csv_rows(view, doc)
        write_output(env, csvout.render(rows, cols), out)
    else:
        {"consolidated": _consolidated_table, "users": _users_table, "daily": _daily_table,
         "log": _log_table, "series": _series_table, "top": _top_table}[view](env, doc)


MAP_MAX_GEOMETRIES = 100_000


def _html(con, window: views.Window, meter_names: list[str] | None) -> str:  # type: ignore[no-untyped-def]
    """Every section of the HTML report, computed from the same views as the other formats."""
    import numpy as np
    import shapely

    from usagectl.meters.unique_area import _rows
    from usagectl.renderers.html import render_report

    cons = views.consolidated(con, window, meter_names)
    daily = views.daily_view(con, window, meter_names)
    users = views.users_view(con, window, meter_names)
    log = views.log_view(con, window, meter_names, LOG_TABLE_ROWS, 0)
    area_meters = [m for m in views._pick(window.contract, meter_names) if m.aggregate == "unique_area"]
    overlap_doc, regions, coverage = None, [], None
    if area_meters:
        overlap_doc, regions = views.overlap_view(con, window, area_meters[0].name, 10, regions=True)
        wkb, _, _ = _rows(con, area_meters[0], window)
        if 0 < len(wkb) <= MAP_MAX_GEOMETRIES:
            coverage = shapely.union_all(shapely.from_wkb(np.asarray([bytes(w) for w in wkb], dtype=object)))
    return render_report(cons, daily, users, log, overlap_doc, coverage, [g for g, _ in regions])


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}_"))
        else:
            out[prefix + k] = v
    return out


def _csv_rows(view: str, doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """CSV rows whose columns are the JSON keys (nested objects joined with _)."""
    head = {"contract_id": doc["contract"]["id"], "period_index": doc["period"]["index"],
            "period_start": doc["period"]["start"], "period_end": doc["period"]["end"],
            "as_of": doc["period"]["as_of"]}
    items = {"consolidated": doc.get("meters"), "users": doc.get("users"),
             "daily": doc.get("days"), "log": doc.get("events"), "series": doc.get("series"),
             "top": doc.get("rows")}[view] or []
    rows = [{**head, **_flatten(item)} for item in items]
    cols = list(head)
    for r in rows:
        cols += [k for k in r if k not in cols]
    return rows, cols


def _fmt(v: Any, decimals: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{decimals}f}"
    if isinstance(v, int):
        return f"{v:,}"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return safe(v)
    return f"{f:,.{decimals}f}" if f != int(f) else f"{int(f):,}"


STATUS_STYLE = {"ok": "green", "warning": "yellow", "exceeded": "red"}
SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """Daily new consumption as block characters (▁ for nothing, █ for the busiest day)."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in values)


def _header(env: Env, doc: dict[str, Any]) -> None:
    c, p = doc["contract"], doc["period"]
    env.out.print(f"[bold]{safe(c['id'])}[/] · owner {safe(c['owner'])} · period #{p['index']} "
                  f"{p['start'][:10]} → {p['end'][:10]} ({safe(c['timezone'])}) · as of "
                  f"{p['as_of'][:19]}")


def _consolidated_table(env: Env, doc: dict[str, Any]) -> None:
    _header(env, doc)

    def build(cols: list[str]) -> Table:
        t = Table(title_justify="left")
        for col in cols:
            t.add_column(col, justify="left" if col in ("meter", "unit", "status") else "right",
                         no_wrap=True)
        for m in doc["meters"]:
            style = STATUS_STYLE.get(m["status"], "")
            cell = {"meter": safe(m["name"]), "unit": safe(m["unit"] or m["aggregate"]),
                    "owner": _fmt(m["owner_total"]), "Σ users": _fmt(m["user_total"]),
                    "overlap": _fmt(m["overlap"]), "billed": _fmt(m["billed"]),
                    "limit": _fmt(m["limit"]), "included": _fmt(m["included"]),
                    "overage": _fmt(m["overage"]),
                    "amount": f"${m['overage_amount_cents'] / 100:,.2f}",
                    "status": f"[{style}]{m['status']}[/]",
                    "projected": _fmt(m["projection"]["projected"]),
                    "last 14 days": sparkline([float(v) for v in m.get("last_14_days") or []])}
            t.add_row(*[cell[c] for c in cols])
        # Meters have different units; only the money adds up across them.
        total = sum(m["overage_amount_cents"] for m in doc["meters"])
        t.add_row(*[("[bold]total[/]" if c == "meter" else f"[bold]${total / 100:,.2f}[/]"
                     if c == "amount" else "") for c in cols])
        return t

    full = ["meter", "unit", "owner", "Σ users", "billed", "limit", "overage", "amount", "status",
            "projected", "last 14 days"]
    print_first_fitting(env, [lambda: build(full), lambda: build(full[:-1]),
                              lambda: build(["meter", "billed", "limit", "amount", "status"])],
                        ["", "the last 14 days' sparkline",
                         "unit, owner, Σ users, overage, projection and sparkline"])
    env.out.print(f"{doc['users']:,} users · {doc['events_counted']:,} events counted")


def _users_table(env: Env, doc: dict[str, Any]) -> None:
    _header(env, doc)
    names = list(doc["users"][0]["meters"]) if doc["users"] else []

    def build(narrow: bool) -> Table:
        t = Table(title_justify="left")
        t.add_column("user", overflow="fold")
        if not narrow:
            t.add_column("org", overflow="fold")
        for n in names:
            t.add_column(safe(n), justify="right", no_wrap=True)
        t.add_column("events", justify="right", no_wrap=True)
        totals = {n: 0.0 for n in names}
        for u in doc["users"]:
            cells = [safe(u["user_id"])] + ([] if narrow else [safe(u["org_id"] or "")])
            for n in names:
                cells.append(_fmt(u["meters"][n]))
                totals[n] += float(u["meters"][n])
            t.add_row(*cells, _fmt(u["events"]))
        t.add_row("[bold]Σ users[/]", *([] if narrow else [""]),
                  *[_fmt(totals[n]) for n in names], _fmt(sum(u["events"] for u in doc["users"])))
        return t

    print_fitting(env, build, "org")


def _daily_table(env: Env, doc: dict[str, Any]) -> None:
    _header(env, doc)
    names = list(doc["days"][0]["meters"]) if doc["days"] else []

    def build(narrow: bool) -> Table:
        t = Table(title_justify="left")
        t.add_column("date", no_wrap=True)
        for n in names:
            t.add_column(f"{safe(n)} owner", justify="right", no_wrap=True)
            if not narrow:
                t.add_column(f"{safe(n)} Σ users", justify="right", no_wrap=True)
        totals: dict[str, list[float]] = {n: [0.0, 0.0] for n in names}
        for day in doc["days"]:
            cells = [day["date"]]
            for n in names:
                o, u = day["meters"][n]["owner"], day["meters"][n]["user"]
                totals[n][0] += float(o)
                totals[n][1] += float(u)
                cells.append(_fmt(o))
                if not narrow:
                    cells.append(_fmt(u))
            t.add_row(*cells)
        cells = ["[bold]total[/]"]
        for n in names:
            cells.append(_fmt(totals[n][0]))
            if not narrow:
                cells.append(_fmt(totals[n][1]))
        t.add_row(*cells)
        return t

    print_fitting(env, build, "Σ-user columns")


def _log_table(env: Env, doc: dict[str, Any]) -> None:
    _header(env, doc)
    t = Table(title_justify="left")
    for col in ("ts", "user", "product", "endpoint", "dataset", "indicators", "new"):
        t.add_column(col, overflow="fold", no_wrap=col == "ts")
    for e in doc["events"]:
        new = []
        if e["new_user"]:
            new.append("user")
        if e["new_dataset"]:
            new.append("dataset")
        if e["new_indicators"]:
            new.append(f"{len(e['new_indicators'])} ind.")
        t.add_row(e["ts"][:19], safe(e["user_id"]), safe(e["product"]), safe(e["endpoint"] or ""),
                  safe(e["dataset_id"] or ""), safe(",".join(e["indicator_ids"] or [])),
                  ", ".join(new))
    env.out.print(t)
    more = doc["total_count"] - doc["offset"] - len(doc["events"])
    if more > 0:
        env.note(f"{more:,} more events; --format csv or json lists them all, or use "
                 f"--offset {doc['offset'] + len(doc['events'])}")


def _series_table(env: Env, doc: dict[str, Any]) -> None:
    _header(env, doc)
    names = list(doc["series"][0]["meters"]) if doc["series"] else []
    t = Table(title=f"New consumption per {doc['bucket']}", title_justify="left")
    t.add_column(doc["bucket"], no_wrap=True)
    for n in names:
        t.add_column(safe(n), justify="right", no_wrap=True)
    totals = {n: 0.0 for n in names}
    for row in doc["series"]:
        cut = 16 if doc["bucket"] == "hour" else (7 if doc["bucket"] == "month" else 10)
        t.add_row(row["start"][:cut], *[_fmt(row["meters"][n]) for n in names])
        for n in names:
            totals[n] += float(row["meters"][n])
    t.add_row("[bold]total[/]", *[_fmt(totals[n]) for n in names])
    env.out.print(t)


def _top_table(env: Env, doc: dict[str, Any]) -> None:
    _header(env, doc)
    t = Table(title=f"{safe(doc['meter'])} by {doc['group_by']}", title_justify="left")
    t.add_column(doc["group_by"], overflow="fold")
    t.add_column("value", justify="right", no_wrap=True)
    has_events = any("events" in r for r in doc["rows"])
    if has_events:
        t.add_column("events", justify="right", no_wrap=True)
    for r in doc["rows"]:
        cells = [safe(r["key"] if r["key"] is not None else "(none)"), _fmt(r["value"])]
        if has_events:
            cells.append(_fmt(r.get("events")))
        t.add_row(*cells)
    env.out.print(t)


@app.command()
@handle_errors
def overlap(
    contract: ContractOption,
    meter: Annotated[str | None, typer.Option(help="The unique_area meter (default: the first).")] = None,
    pairs: Annotated[int, typer.Option(help="How many of the most overlapping pairs.")] = 10,
    geojson: Annotated[str | None, typer.Option(
        help="Write every region covered by two users or more, with those users, as GeoJSON.")] = None,
    period: PeriodOption = None,
    as_of: AsOfOption = None,
    as_ingested_at: AsIngestedOption = None,
    db: DbOption = None,
    fmt: FormatOption = None,
    quiet: QuietOption = False,
) -> None:
    """Owner vs Σ-user area, each user's exclusive and shared area, the most overlapping pairs.

    Example: usagectl overlap --contract acme-farms-2026 --pairs 5 --geojson overlap.geojson
    """
    db, fmt, env = resolve(db, fmt, quiet)
    with session(db, read_only=True) as con:
        window = _window(con, contract, period, as_of, as_ingested_at)
        doc, regions = views.overlap_view(con, window, meter, pairs, regions=geojson is not None)
    if geojson is not None:
        write_output(env, _regions_geojson(regions, window, doc["unit"]), geojson)
    if fmt == "json":
        env.write(jsonout.dumps(doc))
        return
    if fmt == "csv":
        cols = ["user_id", "area", "exclusive_area", "shared_area"]
        env.write(csvout.render(doc["users"], cols))
        return
    _header(env, doc)
    env.out.print(f"meter {safe(doc['meter'])} ({safe(doc['unit'])}): owner {_fmt(doc['owner_total'])}"
                  f" · Σ users {_fmt(doc['user_total'])} · overlap {_fmt(doc['overlap'])}")
    t = Table(title="Users", title_justify="left")
    for col in ("user", "area", "exclusive", "shared"):
        t.add_column(col, justify="left" if col == "user" else "right", no_wrap=col != "user")
    for u in doc["users"]:
        t.add_row(safe(u["user_id"]), _fmt(u["area"]), _fmt(u["exclusive_area"]),
                  _fmt(u["shared_area"]))
    env.out.print(t)
    if doc["pairs"]:
        t = Table(title="Most overlapping pairs", title_justify="left")
        for col in ("user a", "user b", "shared area"):
            t.add_column(col, justify="right" if col == "shared area" else "left")
        for p in doc["pairs"]:
            t.add_row(safe(p["a"]), safe(p["b"]), _fmt(p["area"]))
        env.out.print(t)


def _regions_geojson(regions: list, window: views.Window, unit: str) -> str:
    import shapely

    from usagectl.contracts import UNIT_M2
    from usagectl.meters.area import geodesic_area

    features = []
    for geom, users in regions:
        features.append({"type": "Feature",
                         "properties": {"users": list(users), "user_count": len(users),
                                        "area": round(geodesic_area(geom) / float(UNIT_M2[unit]), 6),
                                        "unit": unit},
                         "geometry": json.loads(shapely.to_geojson(shapely.orient_polygons(geom)))})
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False) + "\n"
