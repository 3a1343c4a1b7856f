"""``--help`` prose is reflowed to the terminal's width: a docstring's line breaks (where the
source happened to wrap at 100 columns) must not survive into the rendered help, where Rich
wraps again at the terminal's width and would leave ragged half-lines."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from usagectl.cli import app, reflow_help
from usagectl.cli.docgen import COMMANDS


def test_reflow_joins_lines_inside_a_paragraph_and_keeps_paragraphs() -> None:
    text = "First line\nstill the first.\n\nSecond paragraph\nwraps here.\n\nExample: x --y"
    assert reflow_help(text) == ("First line still the first.\n\nSecond paragraph wraps here."
                                 "\n\nExample: x --y")


def test_reflow_keeps_lists_indented_blocks_and_verbatim_paragraphs() -> None:
    listing = "Checks:\n- one\n- two\n  continued"
    verbatim = "\b\nkeep\nthese lines"
    indented = "Run:\n    usagectl a\n    usagectl b"
    for text in (listing, verbatim, indented):
        assert reflow_help(text) == text


def _help(path: tuple[str, ...], columns: int) -> list[str]:
    runner = CliRunner(env={"COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"})
    result = runner.invoke(app, [*path, "--help"], prog_name="usagectl")
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.mark.parametrize("path", [p for p in COMMANDS if p])
def test_help_prose_has_no_ragged_lines(path: tuple[str, ...]) -> None:
    # Rich wraps a paragraph greedily: every line but a paragraph's last is full, i.e. the next
    # line's first word would not have fitted on it. A line that ends early, followed by more
    # prose of the same paragraph, is a docstring line break that leaked through.
    columns = 120
    lines = _help(path, columns)
    prose: list[str] = []
    for line in lines:
        if line.lstrip().startswith(("╭", "┌", "+-")):
            break
        prose.append(line.strip())
    for para in "\n".join(prose).split("\n\n"):
        rows = [r for r in para.split("\n") if r]
        if any(r.startswith(("- ", "• ")) for r in rows):
            continue
        for row, after in zip(rows, rows[1:]):
            next_word = after.split(" ", 1)[0]
            if len(row) + 1 + len(next_word) <= columns - 4:
                pytest.fail(f"usagectl {' '.join(path)} --help breaks a line early: {row!r}")
