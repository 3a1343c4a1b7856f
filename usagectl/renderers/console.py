"""The output environment: stdout for data, stderr for everything else (STYLE.md §5).

Built once per command from the real streams (or test doubles), so that colour, progress bars
and widths follow the terminal: colour only on a TTY and never with ``NO_COLOR``; progress only
on a TTY and not with ``--quiet``. With ``--quiet`` the human output (tables on ``out``, notes)
goes nowhere: a command prints nothing on success but the data asked for with ``--format
json/csv/html`` (``write``) — and what went wrong (``err``, or ``loud()`` for a check or an alert
that holds).
"""

from __future__ import annotations

import errno
import io
import os
import sys
from dataclasses import dataclass, field
from typing import IO

from rich.console import Console


class _Console(Console):
    """Rich's console, except that a closed pipe is a BrokenPipeError like any write's.

    Rich's own handling redirects stdout and raises ``SystemExit(1)``; the CLI instead ends a
    command whose reader went away (``usagectl ingests | head -1``) quietly with exit 0.
    """

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


class StdoutState:
    """Whether data streamed to stdout has begun and not ended (docs/cli.md "Streaming large
    outputs").

    A command that fails then cannot give a clean document on stdout, which already holds part
    of one: the CLI writes its error to stderr instead, and the part is left unclosed.
    """

    partial = False


STDOUT = StdoutState()


@dataclass
class Env:
    """Streams and consoles of one command run."""

    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    quiet: bool = False

    def __post_init__(self) -> None:
        no_color = "NO_COLOR" in os.environ
        width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else None
        self.out = _Console(file=io.StringIO() if self.quiet else self.stdout, no_color=no_color,
                           highlight=False, width=width, soft_wrap=False, emoji=False)
        # Messages on stderr are never hard-wrapped: cron logs are grepped line by line.
        self.err = _Console(file=self.stderr, no_color=no_color, highlight=False, width=width,
                           emoji=False, soft_wrap=True)

    def loud(self) -> Env:
        """The same streams with tables shown even under --quiet (a condition that holds)."""
        return Env(stdout=self.stdout, stderr=self.stderr, quiet=False) if self.quiet else self

    @property
    def stderr_is_tty(self) -> bool:
        return bool(getattr(self.stderr, "isatty", lambda: False)())

    def write(self, text: str) -> None:
        """Raw data to stdout (JSON, CSV): no markup, no wrapping."""
        self.stdout.write(text)
        self.stdout.flush()

    def note(self, message: str) -> None:
        """A human note on stderr, suppressed by --quiet."""
        if not self.quiet:
            self.err.print(message)
