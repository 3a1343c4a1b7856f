"""``ingest``, ``ingests`` and ``rejects``: loading events and the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from usagectl.cli import handle_errors, DbOption, FormatOption, QuietOption, app, resolve
from usagectl.cli.options import table_rows
from usagectl.errors import ExitCode
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.console import Env
from usagectl.renderers.output import write_output
from usagectl.renderers.tables import print_fitting, required_width
from usagectl.renderers.text import safe

if TYPE_CHECKING:  # ingest loads pyarrow, shapely and pyproj: only when a file is ingested
    from usagectl.store.ingest import FileResult

COUNT_KEYS = ("rows_read", "accepted", "duplicates", "rejected", "repaired")
REJECTS_TABLE_ROWS = 50


@app.command()
@handle_errors
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files, folders or globs to ingest.",
                                               metavar="PATH...", show_default=False)],
    owner: Annotated[str | None, typer.Option(help="Owner of every event (when the file has "
                                              "no owner column, or to check it).")] = None,
    product: Annotated[str | None, typer.Option(
        help="Product of rows that have none (a gateway log without a product column).")] = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="Feed a canonical column from a source column: canonical=source "
                      "(repeatable; the column keeps its own role too).")] = None,
    route: Annotated[list[str] | None, typer.Option(
        help="Request-URL template (repeatable, first match wins), e.g. "
             "'/datasets/{dataset_id}?ids={indicator_ids}': a matching endpoint becomes the "
             "template path and fills those fields.")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of the geometry when the file does not "
                                            "say (e.g. EPSG:28992).")] = None,
    tz: Annotated[str, typer.Option(help="Time zone of naive timestamps.")] = "UTC",
    strict: Annotated[bool, typer.Option(help="Any rejected row fails the whole file.")] = False,
    source_format: Annotated[str | None, typer.Option(
        "--source-format", help="Force the input format: csv, tsv, parquet, geojson, jsonl.")] = None,
    db: DbOption = None,
    fmt: FormatOption = None,
    quiet: QuietOption = False,
) -> int:
    """Load usage events from CSV/TSV, Parquet/GeoParquet, GeoJSON or JSON Lines files.

    Each file is committed whole or not at all, and re-ingesting adds nothing: events are
    deduplicated on (owner_id, event_id). Every row is accounted for:
    rows_read = accepted + duplicates + rejected. Rejected rows keep their reason
    (`usagectl rejects`). Exit 1 when any file failed. With -q nothing is printed when every
    file succeeds (for cron); failures still go to stderr, and an explicit --format json or csv
    still writes its output.

    Example: usagectl ingest logs/2026-11/*.csv.gz --owner acme --tz America/Chicago
    """
    from usagectl.sources.columns import parse_mapping
    from usagectl.store.ingest import IngestOptions, check_options

    db, fmt, env = resolve(db, fmt, quiet)
    # Bad option values are usage errors before the database is opened (nothing is written).
    options = check_options(IngestOptions(
        owner=owner, mapping=parse_mapping(map_ or []), crs=crs, tz=tz, strict=strict,
        format=source_format, product=product, routes=list(route or [])))
    # The database is opened read-write only for each file's short transactions (docs/ingest.md
    # "Locks"), so reports keep running while files are read.
    results = _run_with_progress(db, paths, options, env)
    totals = ingest_totals(results)
    if fmt == "json":
        env.write(jsonout.dumps({"files": [r.to_dict() for r in results], "totals": totals}))
    elif fmt == "csv":
        cols = ("path", "sha256", "format", *COUNT_KEYS, "seconds", "status", "error")
        env.write(csvout.render([r.to_dict() for r in results], cols))
    elif env.quiet:
        _print_failures(env, results)  # -q: nothing on success (cron), failures on stderr
    else:
        _ingest_table(env, results, totals)
        _reject_hints(env, con_path=db, results=results)
    return int(ExitCode.ERROR) if totals["failed"] else 0


def ingest_totals(results: list[FileResult]) -> dict[str, int]:
    """Row counts summed over files, with how many files ran and how many failed."""
    totals = {k: sum(getattr(r, k) for r in results) for k in COUNT_KEYS}
    totals["files"] = len(results)
    totals["failed"] = sum(r.status != "ok" for r in results)
    return totals


def _run_with_progress(db, paths, options, env: Env) -> list[FileResult]:  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from usagectl.store.ingest import ingest_paths

    if env.quiet or not env.stderr_is_tty:
        return ingest_paths(db, paths, options)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=env.err, transient=True) as bar:
        def start(path: Path, size: int):  # type: ignore[no-untyped-def]
            task = bar.add_task(safe(path.name), total=size or 1)
            return lambda done, total: bar.update(task, completed=done)
        return ingest_paths(db, paths, options, progress=start)


def display_path(path: str, width: int) -> str:
    """A path for a table cell on one line: relative to the current folder when inside it,
    else (when still too long) its middle elided with "…", keeping the file name."""
    shown = path
    try:
        cwd = Path.cwd().resolve()
        if cwd != Path(cwd.anchor):  # from / every path is "inside": keep it absolute
            rel = Path(path).resolve().relative_to(cwd)
            shown = str(rel) if rel.parts else path
    except (ValueError, OSError):
        pass
    if len(shown) <= width:
        return shown
    keep = max(width - 1, 2)
    name = shown.rsplit("/", 1)[-1]
    if len(name) + 1 > keep * 2 // 3:  # narrow: the end of the name says most
        return "…" + shown[-keep:]
    return shown[: keep - len(name) - 1] + "…" + shown[-len(name) - 1:]


def _ingest_table(env: Env, results: list[FileResult], totals: dict) -> None:  # type: ignore[type-arg]
    """Per-file counts; compact form leaves out repaired/format/seconds. Paths never wrap."""

    def build(narrow: bool, paths: list[str] | None = None) -> Table:
        table = Table(title="Ingest", title_justify="left")
        table.add_column("file", no_wrap=True)
        keys = ["rows_read", "accepted", "duplicates", "rejected"] + ([] if narrow else ["repaired"])
        heads = {"rows_read": "read", "duplicates": "dupes"}
        for k in keys:
            table.add_column(heads.get(k, k), justify="right", no_wrap=True)
        if not narrow:
            table.add_column("format", no_wrap=True)
            table.add_column("seconds", justify="right", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for i, r in enumerate(results):
            status = "[green]ok[/]" if r.status == "ok" else "[red]failed[/]"
            row = [safe(paths[i]) if paths else ""] + [f"{getattr(r, k):,}" for k in keys]
            if not narrow:
                row += [safe(r.format or ""), f"{r.seconds:.2f}"]
            table.add_row(*row, status)
        if len(results) > 1:
            row = ["[bold]total[/]"] + [f"{totals[k]:,}" for k in keys]
            table.add_row(*row, *([] if narrow else ["", ""]), "")
        return table

    def fitted(narrow: bool) -> Table:
        # The room left for paths once every other column is shown whole.
        others = required_width(build(narrow)) - max(len("file"), 5 if len(results) > 1 else 0)
        room = max(env.out.width - others, 10)
        return build(narrow, [display_path(r.path, room) for r in results])

    print_fitting(env, fitted, "repaired, format and seconds")
    _print_failures(env, results)


def _print_failures(env: Env, results: list[FileResult]) -> None:
    for r in results:
        if r.error:
            where = "" if r.error.startswith(r.path) else f"{safe(r.path)}: "
            env.err.print(f"[red]failed[/] {where}{safe(r.error)}")


def _reject_hints(env: Env, con_path: str | None, results: list[FileResult]) -> None:
    """After the table: the commonest reject reasons per file, and how to list them all."""
    from usagectl.store import audit
    from usagectl.store.db import session

    rejected = [r for r in results if r.rejected and r.ingest_id is not None]
    if not rejected or env.quiet:
        return
    with session(con_path, read_only=True) as con:
        for r in rejected:
            top = audit.reject_reasons(con, r.ingest_id, limit=5)
            env.err.print(f"{r.rejected:,} rejected in {safe(r.path)}:")
            for row in top:
                times = f"{row['rows']:,} × " if row["rows"] > 1 else ""
                env.err.print(f"  {times}line {row['first_line']}: {safe(row['reason'])}")
            env.err.print(f"  all of them: usagectl rejects --ingest {r.ingest_id}")


@app.command("ingests")
@handle_errors
def ingests_cmd(db: DbOption = None, fmt: FormatOption = None, quiet: QuietOption = False) -> None:
    """List every ingest: file, SHA-256, times, status and row counts (the audit trail).

    A failed or rolled-back ingest is listed with status failed, its error and accepted = 0.

    Example: usagectl ingests --format json | jq '.[] | select(.status == "failed")'
    """
    from usagectl.store import audit
    from usagectl.store.db import session

    db, fmt, env = resolve(db, fmt, quiet)
    with session(db, read_only=True) as con:
        rows = audit.list_ingests(con)
    if fmt == "json":
        env.write(jsonout.dumps(rows))
        return
    if fmt == "csv":
        env.write(csvout.render(rows, audit.INGEST_KEYS + audit.INGEST_EXTRA_KEYS))
        return
    def build(narrow: bool, paths: list[str] | None = None) -> Table:
        table = Table(title="Ingests", title_justify="left")
        table.add_column("id", justify="right", no_wrap=True)
        table.add_column("file", no_wrap=True)
        if not narrow:
            table.add_column("started (UTC)", no_wrap=True)
            table.add_column("sha256", no_wrap=True)
        for k in ("read", "accepted", "dupes", "rejected"):
            table.add_column(k, justify="right", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for i, r in enumerate(rows):
            status = {"ok": "[green]ok[/]", "failed": "[red]failed[/]"}.get(r["status"], r["status"])
            cells = [str(r["id"]), safe(paths[i]) if paths else ""]
            if not narrow:
                cells += [(r["started_at"] or "")[:19].replace("T", " "), (r["sha256"] or "")[:12]]
            cells += [f"{r['rows_read']:,}", f"{r['accepted']:,}", f"{r['duplicates']:,}",
                      f"{r['rejected']:,}", status]
            table.add_row(*cells)
        return table

    def fitted(narrow: bool) -> Table:  # paths never wrap (see _ingest_table)
        room = max(env.out.width - required_width(build(narrow)) + len("file"), 10)
        return build(narrow, [display_path(r["path"], room) for r in rows])

    print_fitting(env, fitted, "start time and sha256")
    for r in rows:
        if r["error"]:
            env.err.print(f"#{r['id']}: {safe(r['error'])}")


@app.command("rejects")
@handle_errors
def rejects_cmd(
    ingest_id: Annotated[int | None, typer.Option("--ingest", help="Only this ingest's rows.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many rows.")] = None,
    offset: Annotated[int, typer.Option(help="Skip this many rows.")] = 0,
    db: DbOption = None,
    fmt: FormatOption = None,
    quiet: QuietOption = False,
) -> None:
    """List rejected rows with their file, line, reason and raw record.

    Tables show the first 50 rows (--limit up to 1000); JSON and CSV hold every row unless
    --limit is given, streamed in batches.

    Example: usagectl rejects --ingest 3 --format csv > rejects.csv
    """
    from usagectl.store import audit
    from usagectl.store.db import session

    db, fmt, env = resolve(db, fmt, quiet)
    if fmt in ("json", "csv"):
        with session(db, read_only=True) as con:
            stream = audit.stream_rejects(con, ingest_id, limit, offset, columnar=True)
            write_output(env, jsonout.chunks(stream) if fmt == "json" else
                         csvout.chunks(stream, audit.REJECT_KEYS), None)
        return
    table_limit = table_rows(limit, REJECTS_TABLE_ROWS)
    with session(db, read_only=True) as con:
        total = audit.count_rejects(con, ingest_id)
        rows = audit.list_rejects(con, ingest_id, table_limit, offset)
    table = Table(title="Rejected rows", title_justify="left")
    table.add_column("ingest", justify="right")
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold", min_width=40)
    if env.out.width >= 100:
        table.add_column("raw", overflow="ellipsis", no_wrap=True,
                         max_width=max(20, env.out.width - 70))
    for r in rows:
        cells = [str(r["ingest_id"]), str(r["line"]), safe(r["reason"])]
        if env.out.width >= 100:
            cells.append(safe((r["raw"] or "")[:200]))
        table.add_row(*cells)
    env.out.print(table)
    more = total - offset - len(rows)
    if more > 0:
        env.note(f"{more:,} more; use --format csv (all rows) or --offset {offset + len(rows)}")
