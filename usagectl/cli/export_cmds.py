"""``export`` (cron CSVs with a manifest) and ``reconcile`` (a vendor statement vs ours)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from usagectl.cli import app, handle_errors, resolve
from usagectl.cli import options as opt
from usagectl.cli.options import (AsIngestedOption, AsOfOption, ContractOption, DbOption,
                                  EngineOption, FormatOption, PeriodOption, QuietOption,
                                  SparkMasterOption, TableJsonFormatOption)
from usagectl.errors import ExitCode, UsageError, UsagectlError
from usagectl.renderers.output import emit, print_notes
from usagectl.reports import EXPORT_VIEWS, EXPORTABLE_VIEWS

if TYPE_CHECKING:
    from usagectl.meters.select import Window


@app.command()
@handle_errors
def export(
    out_dir: Annotated[str | None, typer.Option(
        "--out-dir", help="Folder for the CSV files and manifest.json.", show_default=False)] = None,
    contract: Annotated[str | None, typer.Option("--contract", "-c", help="One contract.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every contract with a current period.")] = False,
    views_opt: Annotated[str, typer.Option(
        "--views", help=f"Comma-separated views, any of {', '.join(EXPORTABLE_VIEWS)}.")] = ",".join(EXPORT_VIEWS),
    period: PeriodOption = None,
    as_of: AsOfOption = None,
    wait: Annotated[float, typer.Option(
        help="Seconds to wait while another export writes into the same folder.")] = 300,
    events: Annotated[str | None, typer.Option(
        "--events", help="Instead of CSVs: write the events table to this new or empty folder as "
        "a Parquet dataset (owner=…/month=YYYY-MM/…, WKB geometry with GeoParquet metadata) that "
        "Spark and other engines read.", show_default=False)] = None,
    owner: Annotated[str | None, typer.Option(
        "--owner", help="With --events: only this owner's events (default: every owner).",
        show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="With --events: replace the dataset an earlier export wrote there.")] = False,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
    db: DbOption = None, fmt: TableJsonFormatOption = None, quiet: QuietOption = False,
) -> int:
    """Write one CSV per contract × view and manifest.json (cron), or --events DIR as Parquet.

    With --out-dir: one CSV per contract × view, plus manifest.json with SHA-256s. With
    --events DIR: the events table as a Parquet dataset that a cluster can read. The dataset holds every stored event of the owner (deletes and failed calls included: the
    reports apply their policies when they read) with the events table's columns and types; it
    is written to a temp folder beside DIR and renamed, so DIR is never half written. A
    non-empty DIR is refused unless --overwrite (docs/dataset.md).

    Files are named CONTRACT.VIEW.csv, with the contract id made safe for a file name; each is
    written atomically (temp file, fsync, rename), so a killed run leaves the previous files
    whole and no temp files. The folder is locked for the whole run: a second export into it
    waits (--wait), so manifest.json always matches the files. Exit 1 if any file failed.

    Example: usagectl export --all --out-dir /srv/usage/$(date +%F) --quiet

    Example: usagectl export --events /data/usage-events --owner acme-farms
    """
    if events is not None:
        if engine is not None or spark_master is not None:
            raise UsageError("--engine and --spark-master go with --out-dir (the CSV views); "
                             "--events DIR writes the stored events as they are",
                             {"options": ["--engine", "--spark-master"]})
        return _export_events(events, owner, overwrite, out_dir, contract, all_, db, fmt, quiet)
    # Library modules load with the command, not at start-up (docs/cli.md "Start-up").
    from usagectl.contracts import period_containing
    from usagectl.reports import notes
    from usagectl.engines import open_engine
    from usagectl.reports.export import export as export_folder
    from usagectl.store import contracts_repo
    from usagectl.store.db import session

    db, fmt, env = resolve(db, fmt, quiet, allowed=opt.TABLE_JSON)
    chosen = list(dict.fromkeys(v.strip() for v in views_opt.split(",") if v.strip()))
    unknown = [v for v in chosen if v not in EXPORTABLE_VIEWS]
    if unknown or not chosen:
        raise UsageError(f"--views {views_opt!r}: choose from {', '.join(EXPORTABLE_VIEWS)}",
                         {"option": "--views", "valid": list(EXPORTABLE_VIEWS)})
    from usagectl.engines import ENGINES, SPARK_VIEWS

    engine = opt.choice(engine or "local", "--engine", ENGINES)
    if spark_master is not None and engine != "spark":
        raise UsageError("--spark-master applies only to --engine spark",
                         {"option": "--spark-master"})
    others = [v for v in chosen if v not in SPARK_VIEWS]
    if engine == "spark" and others:
        raise UsageError(f"--engine spark computes the {', '.join(SPARK_VIEWS)} views, not "
                         f"{', '.join(others)}: add --views {','.join(SPARK_VIEWS)} (or a part "
                         "of it), or leave --engine out", {"option": "--engine",
                                                           "views": list(SPARK_VIEWS)})
    if out_dir is None:
        raise UsageError("give --out-dir DIR (CSV files) or --events DIR (a Parquet dataset)",
                         {"options": ["--out-dir", "--events"]})
    if owner is not None or overwrite:
        raise UsageError("--owner and --overwrite go with --events", {"options": ["--events"]})
    if bool(contract) == bool(all_):
        raise UsageError("give either --contract ID or --all", {"options": ["--contract", "--all"]})
    if not 0 <= wait <= 86_400:
        raise UsageError(f"--wait must be between 0 and 86400 seconds, not {wait:g}",
                         {"option": "--wait", "value": wait})
    now = opt.moment(as_of)
    with session(db, read_only=True) as con, _spark(engine, spark_master):
        contracts = ([contracts_repo.get_contract(con, contract)] if contract else
                     [c for c in contracts_repo.list_contracts(con) if period_containing(c, now)])
        manifest = export_folder(
            con, contracts, chosen, Path(out_dir), now, period, wait,
            engine=None if engine == "local" else
            (lambda window: open_engine("spark", con, window, spark_master)))
        exported_notes = [] if env.quiet else notes.contract_notes(con, _windows(contracts, period, now))
    emit(env, "export", manifest, fmt, out_dir=out_dir)
    print_notes(env, exported_notes)
    return int(ExitCode.ERROR) if manifest["failures"] else 0


@contextlib.contextmanager
def _spark(engine: str, master: str | None) -> Iterator[None]:
    """With --engine spark: one Spark session for the whole export (each contract's engine
    reuses it), stopped at the end."""
    if engine != "spark":
        yield
        return
    from usagectl.engines.spark import spark_session

    with spark_session(master):
        yield


def _export_events(events: str, owner: str | None, overwrite: bool, out_dir: str | None,
                   contract: str | None, all_: bool, db: str | None, fmt: str | None,
                   quiet: bool) -> int:
    """``export --events DIR``: the events table as a Parquet dataset."""
    from usagectl.store.db import session
    from usagectl.store.events_dataset import export_events

    db, fmt, env = resolve(db, fmt, quiet, allowed=opt.TABLE_JSON)
    if out_dir is not None or contract or all_:
        raise UsageError("--events writes the events of every owner (or --owner ID): it takes "
                         "no --out-dir, --contract or --all",
                         {"options": ["--events", "--owner", "--overwrite"]})
    with session(db, read_only=True) as con:
        doc = export_events(con, events, owner, overwrite=overwrite)
    emit(env, "export-events", doc, fmt)
    return 0


def _windows(contracts: list, period: str | None, now) -> list[Window]:  # type: ignore[no-untyped-def]
    """The windows an export covered (a contract whose period cannot be resolved has none)."""
    from usagectl.contracts import resolve_period
    from usagectl.meters.select import Window

    out = []
    for c in contracts:
        try:
            out.append(Window(c, resolve_period(c, period, now), now))
        except UsagectlError:
            continue
    return out


@app.command()
@handle_errors
def reconcile(
    contract: ContractOption,
    against: Annotated[str, typer.Option(help="Vendor statement CSV: date,value or user_id,value.",
                                         show_default=False)],
    meter: Annotated[str | None, typer.Option(help="Meter to compare (default: the first).")] = None,
    tolerance: Annotated[str, typer.Option(
        help="Allowed difference: a percentage (0.1%) or a non-negative number in the meter's unit.")] = "0.1%",
    period: PeriodOption = None,
    as_of: AsOfOption = None,
    as_ingested_at: AsIngestedOption = None,
    db: DbOption = None, fmt: FormatOption = None, quiet: QuietOption = False,
) -> int:
    """Compare a vendor's statement with our numbers; exit 3 when any differ beyond the tolerance.

    Per day (date,value: the billed level's new consumption per local day) or per user
    (user_id,value).

    Example: usagectl reconcile -c acme-farms-2026 --against invoice.csv --tolerance 0.1%
    """
    from usagectl.reports import reconcile as reconciling
    from usagectl.reports.window import open_window
    from usagectl.store.db import session

    db, fmt, env = resolve(db, fmt, quiet)
    opt.moment_text(as_of, "--as-of")
    opt.moment_text(as_ingested_at, "--as-ingested-at")
    reconciling.parse_tolerance(tolerance)
    with session(db, read_only=True) as con:
        window = open_window(con, contract, period, as_of, as_ingested_at)
        m = window.contract.meter(meter) if meter else window.contract.meters[0]
        doc = reconciling.reconcile(con, window, m, against, tolerance)
    # Differences are a condition that holds: shown even under --quiet, like check and alerts.
    emit(env, "reconcile", doc, fmt, loud=bool(doc["differences"]))
    return int(ExitCode.CONDITION) if doc["differences"] else 0
