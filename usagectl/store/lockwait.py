"""How long opening the database waits for another process's lock (``--wait``; docs/cli.md).

Kept apart from ``usagectl.store.db`` so that the command line can set it without importing
DuckDB (start-up time).
"""

from __future__ import annotations

from collections.abc import Callable

#: How long a command waits, by default, for a lock another process holds on the database
#: before it fails with ``database_locked``. Long enough for an ingest's commit of a file of a
#: few million rows; short enough that a cron job stuck behind a program that holds the file
#: for good fails within a minute (docs/cli.md "Locks").
DEFAULT_WAIT = 20.0
#: The largest ``--wait`` accepted (a day).
MAX_WAIT = 86_400.0

_lock_wait: float | None = None
_notify: Callable[[str], None] | None = None


def set_lock_wait(seconds: float | None, notify: Callable[[str], None] | None = None) -> None:
    """Set the wait of every later open that does not give its own (``--wait``; None: default),
    and what to call with a note when an open starts waiting (the CLI prints it on stderr)."""
    global _lock_wait, _notify
    _lock_wait, _notify = seconds, notify


def waiting(note: str) -> None:
    """An open starts waiting for a lock: say so (a silent pause looks like a hang)."""
    if _notify is not None:
        _notify(note)


def lock_wait() -> float:
    """The wait opens use when they are not given one: ``--wait``, else :data:`DEFAULT_WAIT`."""
    return DEFAULT_WAIT if _lock_wait is None else _lock_wait
