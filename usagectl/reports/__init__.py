"""reports."""

#: Every report view: the one registry. ``report --view`` and ``export --views`` accept these, so
#: a new view is one entry here (and its line in ``reports.report.build_view``).
VIEWS = ("consolidated", "users", "daily", "log", "series", "top", "requests", "plan",
         "tokens")
#: What ``export --views`` accepts: every view.
EXPORTABLE_VIEWS = VIEWS
#: The views ``export`` writes by default (here, not in ``reports.export``, so that the CLI can
#: show them in ``--help`` without loading DuckDB: docs/cli.md "Start-up").
EXPORT_VIEWS = ("consolidated", "users", "daily", "log")
