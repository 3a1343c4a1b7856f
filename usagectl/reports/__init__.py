"""reports."""

#: The views ``export`` writes by default (here, not in ``reports.export``, so that the CLI can
#: show them in ``--help`` without loading DuckDB: docs/cli.md "Start-up").
EXPORT_VIEWS = ("consolidated", "users", "daily", "log")
