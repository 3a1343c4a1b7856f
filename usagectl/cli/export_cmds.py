"""``export`` (cron CSVs with a manifest) and ``reconcile`` (a vendor statement vs ours)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import typer

from usagectl import __version__
from usagectl.cli import app, handle_errors, resolve
from usagectl.cli.options import (AsIngestedOption, AsOfOption, ContractOption, DbOption,
                                  FormatOption, PeriodOption, QuietOption)
from usagectl.contracts import parse_as_of, period_containing, resolve_period
from usagectl.errors import ExitCode, IOFailure, UsagectlError, ValidationError
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.files import atomic_write
from usagectl.renderers.output import emit
from usagectl.reports import reconcile as reconciling
from usagectl.reports import views
from usagectl.reports.report import build_view
from usagectl.reports.window import open_window
from usagectl.store import contracts_repo
from usagectl.store.db import session

EXPORT_VIEWS = ("consolidated", "users", "daily", "log")


@app.command()
@handle_errors
def export(
    out_dir: Annotated[str, typer.Option("--out-dir", help="Folder for the CSV files and manifest.json.",
                                         show_default=False)],
    contract: Annotated[str | None, typer.Option("--contract", "-c", help="One contract.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every contract with a current period.")] = False,
    views_opt: Annotated[str, typer.Option("--views", help="Comma-separated views.")] = ",".join(EXPORT_VIEWS),
    period: PeriodOption = None,
    as_of: AsOfOption = None,
    db: DbOption = None, fmt: FormatOption = None, quiet: QuietOption = False,
) -> int:
    """Write one CSV per contract × view, plus manifest.json with SHA-256s (for cron).

    Files are named CONTRACT.VIEW.csv; each is written atomically (temp file, fsync, rename),
    so a killed run leaves the previous files whole and no temp files. Exit 1 if any failed.

    Example: usagectl export --all --out-dir /srv/usage/$(date +%F) --quiet
    """
    db, fmt, env = resolve(db, fmt, quiet, allowed=("table", "json"))
    chosen = [v.strip() for v in views_opt.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in EXPORT_VIEWS]
    if unknown or not chosen:
        raise ValidationError(f"--views {views_opt!r}: choose from {', '.join(EXPORT_VIEWS)}")
    if bool(contract) == bool(all_):
        raise ValidationError("give either --contract ID or --all")
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A run killed mid-write leaves its temp file (never a half-written CSV); clear them.
        # Two exports into one folder at the same moment are not supported.
        for stale in [*folder.glob(".*.csv.*.tmp"), *folder.glob(".manifest.json.*.tmp")]:
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise IOFailure(f"cannot create {out_dir}: {exc.strerror}") from None
    now = parse_as_of(as_of)
    files: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    with session(db, read_only=True) as con:
        contracts = ([contracts_repo.get_contract(con, contract)] if contract else
                     [c for c in contracts_repo.list_contracts(con) if period_containing(c, now)])
        for c in contracts:
            try:
                window = views.make_window(c, resolve_period(c, period, now), now)
            except UsagectlError as err:
                failures.append({"contract": c.id, "view": None, "error": err.message})
                continue
            for view in chosen:
                name = f"{c.id}.{view}.csv"
                try:
                    rows, cols = csvout.view_rows(view, build_view(con, window, view),
                                                  [m.name for m in c.meters])
                    data = csvout.render(rows, cols).encode("utf-8")
                    atomic_write(folder / name, data)
                except (UsagectlError, OSError) as err:
                    failures.append({"contract": c.id, "view": view,
                                     "error": getattr(err, "message", str(err))})
                    continue
                files.append({"name": name, "contract": c.id, "view": view, "rows": len(rows),
                              "sha256": hashlib.sha256(data).hexdigest(),
                              "period": window.period.to_dict(now)})
    manifest = {"tool_version": __version__, "as_of": now.isoformat(), "files": files,
                "failures": failures}
    atomic_write(folder / "manifest.json", jsonout.dumps(manifest).encode("utf-8"))
    emit(env, "export", manifest, fmt, out_dir=out_dir)
    return int(ExitCode.ERROR) if failures else 0


@app.command()
@handle_errors
def reconcile(
    contract: ContractOption,
    against: Annotated[str, typer.Option(help="Vendor statement CSV: date,value or user_id,value.",
                                         show_default=False)],
    meter: Annotated[str | None, typer.Option(help="Meter to compare (default: the first).")] = None,
    tolerance: Annotated[str, typer.Option(help="Allowed difference: 0.1% or an absolute number.")] = "0.1%",
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
    db, fmt, env = resolve(db, fmt, quiet)
    with session(db, read_only=True) as con:
        window = open_window(con, contract, period, as_of, as_ingested_at)
        m = window.contract.meter(meter) if meter else window.contract.meters[0]
        doc = reconciling.reconcile(con, window, m, against, tolerance)
    emit(env, "reconcile", doc, fmt)
    return int(ExitCode.CONDITION) if doc["differences"] else 0
