"""``report`` and ``overlap``: what a contract period counts (SPEC §5, §6, §7)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from usagectl.cli import app, handle_errors, resolve
from usagectl.cli import options as opt
from usagectl.cli.options import (AsIngestedOption, AsOfOption, ContractOption, DbOption,
                                  EngineOption, EventsOption, FormatOption, OutOption, PeriodOption, QuietOption,
                                  ReportFormatOption, SparkMasterOption, UserOption)
from usagectl.errors import UsageError
from usagectl.renderers.output import emit, print_notes, write_output

if TYPE_CHECKING:
    import duckdb

    from usagectl.contracts import Meter
    from usagectl.meters.select import Window


@app.command()
@handle_errors
def report(
    contract: ContractOption,
    view: Annotated[str | None, typer.Option(
        help="consolidated (default), users, daily, log, series, top, requests, plan or tokens.",
        show_default=False)] = None,
    period: PeriodOption = None,
    as_of: AsOfOption = None,
    as_ingested_at: AsIngestedOption = None,
    meter: Annotated[list[str] | None, typer.Option(help="Only this meter (repeatable).")] = None,
    user: UserOption = None,
    date_from: Annotated[str | None, typer.Option(
        "--from", help="Range start, included: a date (local midnight in the contract's zone) "
                       "or an instant with its offset (2026-03-01T06:00:00Z).")] = None,
    date_to: Annotated[str | None, typer.Option(
        "--to", help="Range end, excluded ([from, to)): a date or an instant.")] = None,
    window_kind: Annotated[str | None, typer.Option(
        "--window", help="consolidated: split the range by day, week (ISO, Monday) or month "
                         "in the contract's zone.", show_default=False)] = None,
    bucket: Annotated[str | None, typer.Option(
        help="series: hour, day (default) or month.", show_default=False)] = None,
    group_by: Annotated[str | None, typer.Option(
        "--group-by", help="top: endpoint, operation, resource_id, session_id, user_id "
                           "(default) or org_id; series: product or operation; requests: "
                           "endpoint, operation, product, user_id, org_id or error_code; "
                           "tokens: resource_id, session_id or product (default).",
        show_default=False)] = None,
    contracts_file: Annotated[str | None, typer.Option(
        "--contracts", help="What-if: price the same events under the terms in this TOML file "
                            "(not loaded into the database).")] = None,
    alternatives: Annotated[str | None, typer.Option(
        "--alternatives", metavar="FILE",
        help="plan: other plans of the contract's owner (a contracts TOML file), priced on the "
             "projected usage to recommend the cheapest.", show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(
        help="log: at most this many events; top, requests, tokens: rows; users: users.",
        show_default=False)] = None,
    offset: Annotated[int | None, typer.Option(
        help="log, top, requests, tokens, users: skip this many (default 0).",
        show_default=False)] = None,
    detail: Annotated[bool, typer.Option(
        "--detail", help="users: list each user's and organisation's values of the distinct "
                         "meters (which datasets and indicators), not only their counts.")] = False,
    operation: Annotated[str | None, typer.Option(
        help="log: only events of this operation (exact value).", show_default=False)] = None,
    endpoint: Annotated[str | None, typer.Option(
        help="log: only events of this endpoint (exact value).", show_default=False)] = None,
    status: Annotated[str | None, typer.Option(
        help="log: only ok (succeeded) or failed events.", show_default=False)] = None,
    order: Annotated[str | None, typer.Option(
        help="log: asc (default, oldest first) or desc (newest first).",
        show_default=False)] = None,
    label: Annotated[str | None, typer.Option(
        "--label", metavar="KEY", help="tokens: label each item with this extra column of its "
                                       "events (filename, title): its most recent non-blank "
                                       "value.", show_default=False)] = None,
    out: OutOption = None,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
    events: EventsOption = None,
    db: DbOption = None,
    fmt: ReportFormatOption = None,
    quiet: QuietOption = False,
) -> None:
    """Recompute what a contract period counts: totals, limits, overage and projection.

    Views: consolidated (every meter: owner and Σ-user totals, overlap, billed, limit, overage
    in cents, status, projection), users (each user's value per meter), daily (new
    consumption per local day, owner and Σ users; --from/--to for a range) and log (every
    counted event with what it consumed first: new_user, new_dataset, new_indicators; tables
    show the first 50, JSON and CSV every event unless --limit/--offset; --from/--to list the
    events of those days), series (new consumption per --bucket hour|day|month in the
    contract's zone; --group-by product|operation splits it), top (a meter's value per
    --group-by, largest first; --limit/--offset page it) and requests (total, successful and
    failed requests, failures by error_code, success rate, average response time and credits,
    per --group-by too; failures count whatever include_failed says), plan (the billing
    period's days left and renewal date, each meter's use and projection against its limit,
    and with --alternatives FILE the plan that costs least for the projected usage), tokens (input, output,
    thinking and total tokens per --group-by resource_id (file), session_id (conversation) or
    product (default), newest first, with --label KEY from the events' extra columns, paged
    with --limit/--offset, totals of the page and of the range). users --detail lists
    which values (datasets, indicators) each user and organisation accessed. The log takes
    --operation, --endpoint, --status ok|failed and --order desc. --from/--to, on every view,
    is a half-open range [from, to) of dates (local midnight in the contract's zone) or
    instants: the consolidated view gives the range's usage with a row per contract period it
    crosses (--window day|week|month splits it), the others the range inside one period. An
    option that does not apply to the chosen view is refused. --contracts FILE prices the same
    events under other terms. --format html --out FILE writes one
    self-contained HTML report of every section. --engine spark computes the consolidated,
    users and daily views' count, sum and distinct meters on Spark (--spark-master URL);
    --events PATH reads the events from a dataset export --events wrote (with --contracts FILE,
    no database is needed).

    Example: usagectl report --contract acme-farms-2026 --as-of 2026-11-20 --format json
    """
    # Library modules load with the command, not at start-up (docs/cli.md "Start-up").
    from usagectl.reports.report import (LOG_TABLE_ROWS, OPTION_VIEWS, STREAM_BATCH, VIEWS,
                                         ViewOptions, build_view, group_by_values, meter_names)
    from usagectl.reports.window import open_window
    from usagectl.store.db import session

    from usagectl.engines import SPARK_VIEWS, open_engine

    db, fmt, env = resolve(db, fmt, quiet, allowed=opt.REPORT_FORMATS)
    engine = _engine_options(engine, spark_master, events)
    if view is not None and fmt != "html":  # a mistyped view first: the views it may be
        opt.choice(view, "--view", VIEWS)
    if engine == "spark" and (fmt == "html" or (view or "consolidated") not in SPARK_VIEWS):
        raise UsageError(f"--engine spark computes the {', '.join(SPARK_VIEWS)} views (json, "
                         "csv or table); leave --engine out for the others",
                         {"option": "--engine", "views": list(SPARK_VIEWS)})
    opt.moment_text(as_of, "--as-of")
    opt.moment_text(as_ingested_at, "--as-ingested-at")
    given = {"--from": date_from, "--to": date_to, "--window": window_kind, "--bucket": bucket,
             "--group-by": group_by, "--limit": limit, "--offset": offset,
             "--operation": operation, "--endpoint": endpoint, "--status": status,
             "--order": order, "--alternatives": alternatives, "--label": label,
             "--detail": detail or None}
    ranged = date_from is not None or date_to is not None or window_kind is not None
    if engine == "spark" and detail:
        raise UsageError("--detail lists values with the local engine; leave --engine out",
                         {"option": "--engine", "valid": ["local"]})
    if engine == "spark" and ranged and (view or "consolidated") != "daily":
        raise UsageError("--from, --to and --window are computed by the local engine (the "
                         "daily view excepted); leave --engine out", {"option": "--engine"})
    if out is not None and fmt == "table":
        raise UsageError("--out writes json, csv or html output; a table is for the terminal. "
                         "Add --format json, csv or html, or leave --out out",
                         {"option": "--out"})
    if fmt == "html":
        refused = [o for o, v in {"--view": view, **given}.items() if v is not None]
        if refused:
            raise UsageError(f"{', '.join(refused)} do not apply to --format html, which writes "
                             "every section of the report; leave them out",
                             {"options": refused})
        from usagectl.renderers.html import render_report
        from usagectl.reports.html_report import sections

        with session(db, read_only=True) as con:
            window = open_window(con, contract, period, as_of, as_ingested_at, contracts_file,
                                 user)
            write_output(env, render_report(**sections(con, window, meter)), out)
            _notes(env, con, window, meter)
        return
    view = opt.choice(view or "consolidated", "--view", VIEWS)
    for option, value in given.items():
        if value is not None and view not in OPTION_VIEWS[option]:
            applies = OPTION_VIEWS[option]
            raise UsageError(f"{option} applies only to --view {', '.join(applies)}, not to "
                             f"--view {view}", {"option": option, "views": list(applies)})
    from usagectl.reports.breakdown import BUCKETS
    from usagectl.reports.log import ORDERS, STATUSES
    from usagectl.reports.ranges import WINDOWS

    if window_kind is not None:
        window_kind = opt.choice(window_kind, "--window", WINDOWS)
    opt.rows(limit, "--limit")
    opt.rows(offset, "--offset")
    if view in ("log", "tokens") and fmt == "table":
        limit = opt.table_rows(limit, LOG_TABLE_ROWS)
    if label is not None and not label.strip():
        raise UsageError("--label needs the name of an extra column of the events (e.g. "
                         "filename or title)", {"option": "--label", "value": label})
    opts = ViewOptions(meters=meter, window=window_kind, period_given=period is not None,
                       bucket=opt.choice(bucket or "day", "--bucket", BUCKETS),
                       group_by=(opt.choice(group_by, "--group-by", group_by_values(view))
                                 if group_by is not None else None),
                       limit=limit, offset=offset or 0, operation=operation, endpoint=endpoint,
                       status=opt.choice(status, "--status", STATUSES) if status is not None else None,
                       order=opt.choice(order or "asc", "--order", ORDERS),
                       alternatives=alternatives, label=label, detail=detail)
    with contextlib.ExitStack() as stack:
        # --events with --contracts FILE: every input is given; no database is opened.
        db_con = (None if events is not None and contracts_file else
                  stack.enter_context(session(db, read_only=True)))
        window = open_window(db_con, contract, period, as_of, as_ingested_at,  # type: ignore[arg-type]
                             contracts_file, user)
        if ranged:  # dates are the contract's local midnights
            opts = _with_range(opts, window, date_from, date_to)
        names = meter_names(window, meter)
        from usagectl.reports import views

        with open_engine(engine, db_con, window, spark_master, events) as scalars:  # type: ignore[arg-type]
            con = db_con if events is None else _events_connection(
                stack, events, window, views._pick(window.contract, meter),
                getattr(scalars, "spark", None))
            # JSON and CSV stream the log's events from DuckDB while writing them (flat memory).
            doc = build_view(con, window, view, opts,  # type: ignore[arg-type]
                             batch_size=STREAM_BATCH if fmt in ("json", "csv") else None,
                             scalars=scalars, columnar=fmt in ("json", "csv"))
        kind = "users-detail" if detail else view
        emit(env, "range" if ranged and view == "consolidated" else kind, doc, fmt, out,
             meters=names)
        if events is None or not _is_uri(events):
            # Notes read every event of the owner with DuckDB: not from the rows a URI gave.
            _notes(env, con, window, meter)


def _with_range(opts, window: Window, date_from: str | None, date_to: str | None):  # type: ignore[no-untyped-def]
    """``opts`` with the ``--from/--to`` bounds read in the contract's zone."""
    from dataclasses import replace

    from usagectl.reports.ranges import check_order, parse_bound

    first = parse_bound(date_from, window.contract, "--from")
    last = parse_bound(date_to, window.contract, "--to")
    check_order(first, last)
    return replace(opts, date_from=first, date_to=last)


def _is_uri(events: str) -> bool:
    from usagectl.engines import is_uri

    return is_uri(events)


def _events_connection(stack: contextlib.ExitStack, events: str, window: Window,
                       meters: tuple[Meter, ...], spark: object | None
                       ) -> duckdb.DuckDBPyConnection | None:
    """For ``--events PATH``: DuckDB over the owner's events the area meters (and the events a
    mixed pick counted) read. A local folder: a view of its files. A URI: the rows Spark
    selects for them, in memory (:mod:`usagectl.engines.spark_rows`); None when every meter is
    a count, sum or distinct meter (Spark computes them all)."""
    from usagectl.engines import dataset_connection
    from usagectl.meters.scan import is_scalar

    if not _is_uri(events):
        return stack.enter_context(dataset_connection(events, window.contract.owner))
    if all(is_scalar(m) for m in meters):
        return None
    from usagectl.engines.spark_rows import area_connection

    return stack.enter_context(area_connection(spark, events, window, meters))


def _notes(env, con, window: Window, meter: list[str] | None) -> None:  # type: ignore[no-untyped-def]
    """Why a meter counts nothing, and what --user means, on stderr (none with --quiet)."""
    from usagectl.reports import notes, views

    if not env.quiet:
        print_notes(env, notes.report_notes(con, window, views._pick(window.contract, meter)))


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
    user: UserOption = None,
    contracts_file: Annotated[str | None, typer.Option(
        "--contracts", help="What-if: the terms in this TOML file (not loaded into the "
                            "database).")] = None,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
    events: EventsOption = None,
    db: DbOption = None,
    fmt: FormatOption = None,
    quiet: QuietOption = False,
) -> None:
    """Owner vs Σ-user area, each user's exclusive and shared area, the most overlapping pairs.

    --engine spark runs the area meter's blocks of tiles on Spark (--spark-master URL); --events
    PATH reads the events from a dataset export --events wrote (with --contracts FILE, no
    database is needed).

    Example: usagectl overlap --contract acme-farms-2026 --pairs 5 --geojson overlap.geojson
    """
    from usagectl.reports import views
    from usagectl.reports.window import open_window
    from usagectl.store.db import session

    from usagectl.engines import area_engine

    db, fmt, env = resolve(db, fmt, quiet)
    engine = _engine_options(engine, spark_master, events)
    opt.moment_text(as_of, "--as-of")
    opt.moment_text(as_ingested_at, "--as-ingested-at")
    opt.rows(pairs, "--pairs")
    with contextlib.ExitStack() as stack:
        # --events with --contracts FILE: every input is given; no database is opened.
        db_con = (None if events is not None and contracts_file else
                  stack.enter_context(session(db, read_only=True)))
        window = open_window(db_con, contract, period, as_of, as_ingested_at,  # type: ignore[arg-type]
                             contracts_file, user)
        picked = views.overlap_meter(window.contract, meter)
        with area_engine(engine, spark_master) as spark:
            con = db_con if events is None else _events_connection(
                stack, events, window, (picked,), spark)
            doc, regions = views.overlap_view(con, window, picked.name, pairs,  # type: ignore[arg-type]
                                              regions=geojson is not None)
    if geojson is not None:
        from usagectl.renderers.geojsonout import regions_geojson

        write_output(env, regions_geojson(regions, doc["unit"]), geojson)
    emit(env, "overlap", doc, fmt)


def _engine_options(engine: str | None, spark_master: str | None, events: str | None) -> str:
    """``--engine`` (local or spark), and ``--spark-master``/``--events`` only with spark."""
    from usagectl.engines import ENGINES

    engine = opt.choice(engine or "local", "--engine", ENGINES)
    if spark_master is not None and engine != "spark":
        raise UsageError("--spark-master applies only to --engine spark",
                         {"option": "--spark-master"})
    if events is not None and engine != "spark":
        raise UsageError("--events applies only to --engine spark: add --engine spark (the "
                         "local engine reads the database)", {"option": "--events"})
    return engine
