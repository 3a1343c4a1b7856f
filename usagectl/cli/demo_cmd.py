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
from usagectl.renderers.output import emit
from usagectl.renderers.report_tables import consolidated_table
from usagectl.renderers.text import safe

# Files that need ingest options, as a user would pass them on the command line.
DEMO_OWNERS = {"licence_calls.csv": "lca-institute"}
# The sample data spans 2026-08-01 … 2026-11-20; this "now" keeps the demo's output stable.
DEMO_AS_OF = "2026-11-20T12:00:00Z"

# One example of each report view issue 13 added: (contract, view, the options after
# `--contract ID`, ViewOptions fields). The demo prints the command before its table; the same
# command on the demo database prints the same table.
VIEW_EXAMPLES: tuple[tuple[str, str, str, dict], ...] = (
    ("docuscan-team-monthly", "requests", "--view requests --group-by product",
     {"group_by": "product"}),
    ("terra-pro-monthly", "consolidated", "--from 2026-10-15 --to 2026-11-15 --window week",
     {"date_from": "2026-10-15", "date_to": "2026-11-15", "window": "week"}),
    ("docuscan-team-monthly", "series", "--view series --group-by product",
     {"group_by": "product"}),
    ("terra-pro-monthly", "tokens", "--view tokens --group-by session_id --label title --limit 5",
     {"group_by": "session_id", "label": "title", "limit": 5}),
    # The alternatives file is read from the data folder the demo builds from.
    ("terra-pro-monthly", "plan", "--view plan --alternatives sample_data/plan_alternatives.toml",
     {"alternatives": "plan_alternatives.toml"}),
    ("lca-licence-2026", "users", "--view users --detail --limit 3", {"detail": True, "limit": 3}),
)


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
        rows = [_with_period(c, as_of, con) for c in contracts]  # with each meter's status
        now = opt.moment(as_of)
        reports = [views.consolidated(con, views.make_window(c, resolve_period(c, None, now), now))
                   for c in contracts if period_containing(c, now) is not None]
        examples = _view_examples(con, {c.id: c for c in contracts}, now, data_dir)
    totals = ingest_totals(results)
    _ingest_table(env, results, totals)
    env.out.print()
    env.out.print(f"$ usagectl contracts list --as-of {as_of}", soft_wrap=True)
    contracts_table(env, rows, title=f"Contracts ({len(outcome)} loaded) as of {as_of}")
    for doc in reports:
        env.out.print()
        consolidated_table(env, doc)
    for command, kind, doc, names in examples:
        env.out.print()
        env.out.print(f"$ {safe(command)} --as-of {as_of}", soft_wrap=True)
        emit(env, kind, doc, "table", meters=names)
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


def _view_examples(con, contracts: dict, now, data_dir: Path) -> list[tuple[str, str, object, list[str]]]:  # type: ignore[no-untyped-def]
    """(command, renderer kind, document, meter names) of each ``VIEW_EXAMPLES`` row whose
    contract the data holds, computed as ``usagectl report`` computes them."""
    from dataclasses import replace

    from usagectl.contracts import resolve_period
    from usagectl.reports import views
    from usagectl.reports.ranges import parse_bound
    from usagectl.reports.report import ViewOptions, build_view, meter_names

    out = []
    for cid, view, args, fields in VIEW_EXAMPLES:
        c = contracts.get(cid)
        if c is None:  # another data folder: no such contract
            continue
        window = views.make_window(c, resolve_period(c, None, now), now)
        opts = replace(ViewOptions(), **fields)
        if opts.alternatives is not None:
            if not (data_dir / opts.alternatives).is_file():  # another data folder
                continue
            opts = replace(opts, alternatives=str(data_dir / opts.alternatives))
        if opts.date_from is not None or opts.date_to is not None:
            opts = replace(opts, date_from=parse_bound(fields.get("date_from"), c, "--from"),
                           date_to=parse_bound(fields.get("date_to"), c, "--to"))
        kind = "range" if view == "consolidated" and opts.date_from is not None else view
        kind = "users-detail" if opts.detail else kind  # as `report --detail` renders it
        out.append((f"usagectl report --contract {cid} {args}", kind,
                    build_view(con, window, view, opts), meter_names(window, None)))
    return out
