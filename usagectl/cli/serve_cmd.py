"""``serve``: the vendors' usage endpoints over HTTP (docs/api.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from usagectl.cli import app, handle_errors, resolve
from usagectl.cli import options as opt
from usagectl.cli.options import AsOfOption, DbOption, QuietOption
from usagectl.errors import UsageError

#: Hosts that only this machine reaches; any other --host is said out loud at start.
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@app.command()
@handle_errors
def serve(
    tokens: Annotated[str, typer.Option(
        "--tokens", help="TOML file of [[token]] tables: token, owner and optional user "
                         "(that token sees only that user's figures).", show_default=False)],
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")]
        = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    as_of: AsOfOption = None,
    rate_limit: Annotated[int, typer.Option(
        "--rate-limit", help="Requests a minute per token (the v2 API's 30); POST "
                             "/api/v2/usage/check gets twice as many.")] = 30,
    contracts_file: Annotated[str | None, typer.Option(
        "--contracts", help="What-if: serve the figures under the terms in this TOML file "
                            "(not loaded into the database).")] = None,
    alternatives: Annotated[str | None, typer.Option(
        "--alternatives", metavar="FILE",
        help="Other plans (a contracts TOML file) that GET /api/v2/usage/plan compares each "
             "contract with: the plans of the same owner. Without it the route has no "
             "recommendation.", show_default=False)] = None,
    db: DbOption = None,
    quiet: QuietOption = False,
) -> None:
    """Serve a read-only HTTP API answering the vendors' usage endpoints from the database.

    Leaf's billing routes (/billing/contracts…) in Leaf's field names, the land-data API's
    /api/public/v1/usage/, the v2 /api/v2/usage/* routes and the licence API's reports
    (/api/licence/v1/reports/…), with bearer tokens from --tokens, per-token rate limits
    (--rate-limit, 30 requests a minute), errors as {"error": {"code", "message", "request_id",
    "details"}} and the OpenAPI schema at /openapi.json. The database
    is opened read-only per request: an ingest may run beside the server (a request that meets
    its commit answers 503 with Retry-After). --as-of fixes the moment taken as now;
    --alternatives FILE gives the plan route other plans to recommend from.

    Example: usagectl serve --tokens tokens.toml --port 8000
    """
    from usagectl.server.tokens import load_tokens

    db, _, env = resolve(db, None, quiet)
    opt.moment_text(as_of, "--as-of")
    if not 0 < port < 65536:
        raise UsageError(f"--port {port} is not a TCP port (1-65535)",
                         {"option": "--port", "value": port})
    if not 0 < rate_limit <= 1_000_000:
        raise UsageError(f"--rate-limit {rate_limit} is not a number of requests a minute "
                         "(1 to 1000000)", {"option": "--rate-limit", "value": rate_limit})
    grants = load_tokens(tokens)
    if contracts_file or alternatives:
        from usagectl.contracts import load_contracts_file

        for path in filter(None, (contracts_file, alternatives)):
            load_contracts_file(path)  # a bad file is refused now, not at the first request
    from usagectl.store.db import session

    with session(db, read_only=True):  # a missing or foreign file fails now, exit 1
        pass
    # FastAPI and uvicorn load here only (docs/cli.md "Start-up").
    import uvicorn

    from usagectl.server.app import ServeConfig, create_app

    api = create_app(ServeConfig(db, grants, as_of, contracts_file,
                                 {"default": rate_limit, "check": 2 * rate_limit},
                                 alternatives_file=alternatives))
    if host not in LOOPBACK and not env.quiet:
        env.err.print(f"usagectl: serving on {host}, reachable from other machines",
                      markup=False, highlight=False)
    uvicorn.run(api, host=host, port=port, log_level="warning" if env.quiet else "info",
                server_header=False)
