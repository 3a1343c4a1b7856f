"""Generate docs/cli-reference.md from the commands' own ``--help`` (STYLE.md §9).

``make docs`` rewrites the file; ``tests/test_docs.py`` fails when it is out of date, so the
reference cannot drift from the code.
"""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from usagectl.cli import app

COMMANDS: tuple[tuple[str, ...], ...] = (
    (),
    ("ingest",),
    ("ingests",),
    ("rejects",),
    ("contracts",),
    ("contracts", "load"),
    ("contracts", "list"),
    ("contracts", "show"),
    ("report",),
    ("overlap",),
    ("usage",),
    ("check",),
    ("alerts",),
    ("export",),
    ("reconcile",),
    ("serve",),
    ("demo",),
)


def help_text(path: tuple[str, ...]) -> str:
    """The ``--help`` of one command, rendered at a fixed width without colour."""
    runner = CliRunner(env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    result = runner.invoke(app, [*path, "--help"], prog_name="usagectl")
    if result.exit_code != 0:
        raise RuntimeError(f"usagectl {' '.join(path)} --help failed: {result.output}")
    return "\n".join(line.rstrip() for line in result.stdout.splitlines()).strip("\n")


def render() -> str:
    parts = ["# CLI reference", "",
             "Generated from `--help` by `make docs` (`python -m usagectl.cli.docgen`); a test "
             "fails when this file is out of date.", ""]
    for path in COMMANDS:
        title = " ".join(("usagectl", *path))
        parts += [f"## `{title}`", "", "```text", help_text(path), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
