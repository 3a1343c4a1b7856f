"""Tables that fit the terminal (STYLE.md; ccusage/GoAccess habits).

Each table is built in variants, richest first. The first whose every ``no_wrap`` column
(numbers, statuses, dates) fits at its natural width beside the foldable ones (names) at their
minimum is printed, with a note of what it leaves out. Numbers are never cut: when even the
last variant does not fit, it is printed as wide as it needs (the terminal wraps the lines).
"""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table
from rich.text import Text

from usagectl.renderers.console import Env


def _cell_len(value: object) -> int:
    if isinstance(value, Text):
        return value.cell_len
    return Text.from_markup(str(value)).cell_len


def required_width(table: Table) -> int:
    """Columns needed to show every no_wrap cell whole (padding and borders included)."""
    total = 1  # the closing border
    for col in table.columns:
        header = _cell_len(col.header)
        if col.no_wrap:
            width = max([header, *(_cell_len(c) for c in col.cells)])
        else:
            width = max(col.min_width or 0, min(header, 12))
        total += width + 3  # one space of padding each side and a border
    return total


def print_fitting(env: Env, build: Callable[[bool], Table], hidden: str) -> None:
    """Print ``build(False)`` when it fits the terminal, else ``build(True)`` and a note."""
    print_first_fitting(env, [lambda: build(False), lambda: build(True)], ["", hidden])


def print_first_fitting(env: Env, builds: list[Callable[[], Table]], hidden: list[str]) -> None:
    """Print the first table (richest first) that fits; note what the printed one leaves out."""
    need = 0
    for i, build in enumerate(builds):
        table = build()
        width = required_width(table)
        need = need or width  # what the richest table needs
        last = i == len(builds) - 1
        if width > env.out.width and not last:
            continue
        if width <= env.out.width:
            env.out.print(table)
        else:  # Rich would cut numbers to fit: print wider than the terminal instead
            narrow = env.out.width
            env.out.width = width
            try:
                env.out.print(table, crop=False)
            finally:
                env.out.width = narrow
        if hidden[i]:
            env.note(f"[dim]({hidden[i]} shown on terminals ≥ {need} columns, or with "
                     "--format json)[/]")
        return
