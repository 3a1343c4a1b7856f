"""One output path for every command's document: ``emit(env, kind, doc, fmt, out)`` (STYLE.md §3).

JSON is the document itself, CSV its rows (:func:`usagectl.renderers.csvout.rows_of`), a table
its Rich rendering (:data:`usagectl.renderers.report_tables.TABLES`). Data goes to stdout, or
atomically to ``--out``; notes go to stderr.

JSON and CSV are written as they are made, in pieces (:func:`usagectl.renderers.jsonout.chunks`,
:func:`usagectl.renderers.csvout.chunks`), so a document whose rows are an iterator (a streamed
log) is never held whole: to stdout piece by piece, to a file through its temp file
(docs/cli.md "Streaming large outputs").
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from usagectl.errors import IOFailure
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.console import STDOUT, Env
from usagectl.renderers.files import same_file, write_file
from usagectl.renderers.text import safe


def write_output(env: Env, text: str | Iterable[str], out: str | None) -> None:
    """Data to stdout, or to the file ``out`` (:func:`usagectl.renderers.files.write_file`:
    atomically for a regular file, straight into a FIFO or a device such as /dev/stdout).

    ``text`` may be an iterable of pieces, written as they come. If taking a piece fails, a
    file's temp file is removed (the file is left as it was); on stdout what was written stays,
    and :data:`usagectl.renderers.console.STDOUT` says so until the command ends.
    """
    if out is None:
        _to_stdout(env, text)
        return
    target = Path(out)
    if _is_stdout(env, target):
        # `--out /dev/stdout` (or a link to /proc/self/fd/1): our own stdout, written as stdout,
        # so that `>> log` appends instead of the log being replaced.
        _to_stdout(env, text)
        return
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise IOFailure(f"cannot write {out}: folder {folder} does not exist", {"path": out})
    try:
        write_file(target, encoded(text))
    except OSError as exc:
        raise IOFailure(f"cannot write {out}: {exc.strerror or exc}", {"path": out}) from None
    env.note(f"wrote {safe(out)}")


def encoded(text: str | Iterable[str]) -> bytes | Iterator[bytes]:
    """UTF-8 of a text, or of each piece of an iterable of pieces as it is taken."""
    if isinstance(text, str):
        return text.encode("utf-8")
    return (piece.encode("utf-8") for piece in text)


def _to_stdout(env: Env, text: str | Iterable[str]) -> None:
    if isinstance(text, str):
        env.write(text)
        return
    for piece in text:
        STDOUT.partial = True
        env.write(piece)
    STDOUT.partial = False


def _is_stdout(env: Env, path: Path) -> bool:
    """True when ``path`` is the file this command's stdout already writes to."""
    try:
        there = os.stat(path)
        mine = os.fstat(env.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False  # nothing there yet, or a stdout without a file (a test's buffer)
    return same_file(there, mine)


def emit(env: Env, kind: str, doc: Any, fmt: str, out: str | None = None, *,
         meters: Sequence[str] = (), loud: bool = False, **table_args: Any) -> None:
    """Render ``doc`` (a document of ``kind``) as ``fmt`` to stdout or ``out``.

    ``meters`` names the CSV's meter columns (the contract's, whatever the data holds); ``loud``
    shows a table even under ``--quiet`` (a check or alert condition holds).
    """
    if fmt == "json":
        write_output(env, jsonout.chunks(doc), out)
    elif fmt == "csv":
        rows, cols = csvout.rows_of(kind, doc, meters)
        write_output(env, csvout.chunks(rows, cols), out)
    else:
        from usagectl.renderers.report_tables import TABLES

        TABLES[kind](env.loud() if loud else env, doc, **table_args)


def print_notes(env: Env, notes: list[str]) -> None:
    """Notes about the figures (a meter that counts nothing, …) on stderr; none with --quiet."""
    for n in notes:
        env.note(f"note: {safe(n)}")
