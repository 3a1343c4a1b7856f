"""``export`` (cron CSVs with a manifest) and ``reconcile`` (a vendor statement vs ours)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from usagectl import __version__
from usagectl.cli import DbOption, FormatOption, QuietOption, app, handle_errors, resolve
from usagectl.cli.report_cmds import (AsIngestedOption, AsOfOption, ContractOption, PeriodOption,
                                      _csv_rows, _fmt, _window)
from usagectl.contracts import parse_as_of, period_containing, resolve_period
from usagectl.errors import ExitCode, IOFailure, UsagectlError, ValidationError
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.files import atomic_write
from usagectl.renderers.text import safe
from usagectl.reports import reconcile as reconciling
from usagectl.reports import views
from usagectl.store import contracts_repo
from usagectl.store.db import session

EXPORT_VIEWS = ("consolidated", "users", "daily", "log")


def _view_doc(con, window: views.Window, view: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    if view == "consolidated":
        return views.consolidated(con, window)
    if view == "users":
        return views.users_view(con, window)
    if view == "daily":
        return views.daily_view(con, window)
    return views.log_view(con, window, None, None, 0)


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
                    rows, cols = _csv_rows(view, _view_doc(con, window, view))
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
    if fmt == "json":
        env.write(jsonout.dumps(manifest))
    else:
        t = Table(title=f"Exported to {safe(out_dir)}", title_justify="left")
        for col in ("file", "rows", "sha256"):
            t.add_column(col, justify="right" if col == "rows" else "left", no_wrap=col != "file")
        for f in files:
            t.add_row(safe(f["name"]), f"{f['rows']:,}", f["sha256"][:16])
        env.out.print(t)
        for f in failures:
            env.err.print(f"[red]failed[/] {safe(f['contract'])} {safe(f['view'] or '')}: {safe(f['error'])}")
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
        window = _window(con, contract, period, as_of, as_ingested_at)
        m = window.contract.meter(meter) if meter else window.contract.meters[0]
        doc = reconciling.reconcile(con, window, m, against, tolerance)
    if fmt == "json":
        env.write(jsonout.dumps(doc))
    elif fmt == "csv":
        env.write(csvout.render(doc["differences"], ["key", "ours", "theirs", "difference",
                                                      "within_tolerance", "only_in"]))
    else:
        env.out.print(f"{safe(doc['contract']['id'])} · meter {safe(doc['meter'])} · by {doc['by']} · "
                      f"{doc['compared']} compared · tolerance {safe(doc['tolerance'])}")
        if not doc["differences"]:
            env.out.print("[green]no differences beyond the tolerance[/]")
        else:
            t = Table(title="Differences", title_justify="left")
            for col in (doc["by"], "ours", "theirs", "difference"):
                t.add_column(col, justify="left" if col == doc["by"] else "right", no_wrap=True)
            for r in doc["differences"]:
                t.add_row(safe(r["key"]), _fmt(r["ours"], 6), _fmt(r["theirs"], 6),
                          _fmt(r["difference"], 6))
            env.out.print(t)
    return int(ExitCode.CONDITION) if doc["differences"] else 0
