"""Exit codes and typed errors shared by the library and the CLI (SPEC §6).

Library code raises :class:`UsagectlError` subclasses; the CLI turns them into an exit code and,
in JSON mode, into ``{"error": {"code", "message", "details"}}``. No user error ever reaches the
terminal as a traceback.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes, documented in ``--help`` and the README."""

    OK = 0
    ERROR = 1  # the command failed (bad file, locked database, nothing found, …)
    USAGE = 2  # the command line itself is wrong
    CONDITION = 3  # a check or alert condition holds (cannot proceed, over limit)
    INTERRUPTED = 130  # Ctrl-C

    @property
    def meaning(self) -> str:
        """A few words for ``--help`` and the docs."""
        return _EXIT_MEANINGS[self]


_EXIT_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "error",
    ExitCode.USAGE: "usage error",
    ExitCode.CONDITION: "a check or alert condition holds",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


class UsagectlError(Exception):
    """Base class: a user-facing error with a stable machine code."""

    code = "internal_error"
    exit_code = ExitCode.ERROR

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationError(UsagectlError):
    """Input that breaks the contract: a bad file, a bad contract, a bad option value."""

    code = "validation_error"


class UsageError(ValidationError):
    """The command line is wrong (exit 2)."""

    exit_code = ExitCode.USAGE


class NotFoundError(UsagectlError):
    """A contract, meter, ingest or database that does not exist."""

    code = "not_found"


class DatabaseLockedError(UsagectlError):
    """Another process holds the DuckDB file's write lock."""

    code = "database_locked"


class IOFailure(UsagectlError):
    """A file could not be read or written."""

    code = "io_error"


class UsageLimitExceeded(UsagectlError):
    """A pre-flight check found that the requested amount is not available (exit 3)."""

    code = "usage_limit_exceeded"
    exit_code = ExitCode.CONDITION


class InternalError(UsagectlError):
    """An invariant broke: a bug, reported with enough detail to file it."""

    code = "internal_error"
