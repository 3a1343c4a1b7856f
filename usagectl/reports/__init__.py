"""reports."""

#: Every report view: the one registry. ``report --view`` and ``export --views`` accept these, so
#: a new view is one entry here (and its line in ``reports.report.build_view``).
VIEWS = ("consolidated", "users", "daily", "log", "series", "top", "requests", "plan",
         "tokens")
#: Views of other commands that ``export`` writes too: ``overlap`` (its own command's CSV).
COMMAND_VIEWS = ("overlap",)
#: What ``export --views`` accepts: every report view, then the command views.
EXPORTABLE_VIEWS = (*VIEWS, *COMMAND_VIEWS)
#: The views ``export`` writes by default (here, not in ``reports.export``, so that the CLI can
#: show them in ``--help`` without loading DuckDB: docs/cli.md "Start-up").
EXPORT_VIEWS = ("consolidated", "users", "daily", "log")
