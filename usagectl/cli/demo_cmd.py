"""``demo``: build a database from the bundled sample data and show what it holds."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from usagectl.cli import handle_errors, QuietOption, app, resolve
from usagectl.cli.contract_cmds import _with_period, contracts_table
from usagectl.cli.ingest_cmds import _ingest_table, ingest_totals
from usagectl.cli import options as opt
from usagectl.errors import ExitCode
from usagectl.renderers.report_tables import consolidated_table
from usagectl.renderers.text import safe

# Files that need ingest options, as a user would pass them on the command line.
DEMO_OWNERS = {"licence_calls.csv": "lca-institute"}
# The sample data spans 2026-08-01 … 2026-11-20; this "now" keeps the demo's output stable.
DEMO_AS_OF = "2026-11-20T12:00:00Z"


@app.command()
@handle_errors
def demo(
    data: Annotated[str | None, typer.Option(
        help="Folder with sample data and contracts.toml (default: ./sample_data when present, "
             "else freshly generated).")] = None,
    as_of: Annotated[str, typer.Option("--as-of", help="The moment taken as now.")] = DEMO_AS_OF,
    quiet: QuietOption = False,
) -> int:
    """Build a database in a temporary folder from the sample data and print the reports.

    Example: usagectl demo
    """
    # Library modules load with the command, not at start-up (docs/cli.md "Start-up").
    from usagectl.contracts import period_containing, resolve_period
    from usagectl.reports import views
    from usagectl.store import contracts_repo
    from usagectl.store.db import session

    from usagectl.store.ingest import IngestOptions, expand_paths, ingest_file

    _, _, env = resolve(None, "table", quiet)
    folder = Path(tempfile.mkdtemp(prefix="usagectl-demo-"))
    if data is None and (Path("sample_data") / "contracts.toml").exists():
        data_dir = Path("sample_data")
    elif data is None:
        from usagectl.sample.generator import generate

        data_dir = folder / "sample_data"
        generate(data_dir)
    else:
        data_dir = Path(data)
    db = folder / "demo.duckdb"
    env.note(f"Building {safe(db)} from {safe(data_dir)}/ …")
    with session(db) as con:
        files = expand_paths([str(data_dir)])
        results = [ingest_file(con, f, IngestOptions(owner=DEMO_OWNERS.get(f.name))) for f in files]
        outcome = contracts_repo.load_file(con, data_dir / "contracts.toml")
        contracts = contracts_repo.list_contracts(con)
        rows = [_with_period(c, as_of) for c in contracts]
        now = opt.moment(as_of)
        reports = [views.consolidated(con, views.make_window(c, resolve_period(c, None, now), now))
                   for c in contracts if period_containing(c, now) is not None]
    totals = ingest_totals(results)
    _ingest_table(env, results, totals)
    env.out.print()
    contracts_table(env, rows, title=f"Contracts ({len(outcome)} loaded) as of {as_of}")
    for doc in reports:
        env.out.print()
        consolidated_table(env, doc)
    env.out.print()
    env.out.print(f"Database: {safe(db)}\nExplore it:\n"
                  f"  export USAGECTL_DB={safe(db)}\n"
                  "  usagectl ingests\n"
                  "  usagectl rejects\n"
                  f"  usagectl report --contract {safe(rows[0]['id']) if rows else 'ID'} --view users "
                  f"--as-of {as_of}\n"
                  f"  usagectl overlap --contract {safe(rows[0]['id']) if rows else 'ID'} --as-of {as_of}",
                  soft_wrap=True)
    return int(ExitCode.ERROR) if any(r.status != "ok" for r in results) else 0
