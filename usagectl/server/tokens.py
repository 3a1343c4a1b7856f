"""``serve --tokens FILE``: which bearer token sees which owner (and optionally one user).

The file holds ``[[token]]`` tables with ``token``, ``owner`` and an optional ``user``. It is read
once at start-up and refused whole, listing every problem, when anything is wrong: a server
that started with half its tokens would answer 401 to clients that did nothing wrong.
Tokens are secrets: no message ever quotes one (problems name the table by its position).
"""

from __future__ import annotations

import hmac
import tomllib
from dataclasses import dataclass
from pathlib import Path

from usagectl.errors import UsageError

#: The keys a ``[[token]]`` table may hold.
KEYS = ("token", "owner", "user")


@dataclass(frozen=True)
class Grant:
    """What one token sees: an owner's contracts, or only ``user``'s figures in them."""

    token: str
    owner: str
    user: str | None = None
    #: The table's position in the file (1-based): how logs and messages name a token.
    number: int = 0

    def __repr__(self) -> str:  # never the secret, even in a traceback
        return f"Grant(#{self.number}, owner={self.owner!r}, user={self.user!r})"


def load_tokens(path: str) -> list[Grant]:
    """Read and validate a tokens file; a :class:`UsageError` (exit 2) lists every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--tokens {path}: no such file; write one with [[token]] tables "
                         '(token = "…", owner = "…", optional user = "…")',
                         {"option": "--tokens", "path": path}) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--tokens {path}: cannot read it ({exc})",
                         {"option": "--tokens", "path": path}) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--tokens {path} is not valid TOML: {exc}",
                         {"option": "--tokens", "path": path}) from None
    problems: list[str] = []
    extra = sorted(k for k in doc if k != "token")
    if extra:
        problems.append(f"unknown top-level keys {', '.join(extra)}: the file holds only "
                        "[[token]] tables")
    tables = doc.get("token", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.append("`token` must be an array of tables: write each as [[token]]")
        tables = []
    if not tables and not problems:
        problems.append('no [[token]] table: add one with token = "…" and owner = "…"')
    grants: list[Grant] = []
    seen: dict[str, int] = {}
    for i, t in enumerate(tables, 1):
        where = f"[[token]] #{i}"
        unknown = sorted(k for k in t if k not in KEYS)
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(unknown)}; a token table holds "
                            f"{', '.join(KEYS)}")
        for key in ("token", "owner"):
            if not isinstance(t.get(key), str) or not t[key].strip():
                problems.append(f"{where}: `{key}` is required, a non-empty string")
        if "user" in t and (not isinstance(t["user"], str) or not t["user"].strip()):
            problems.append(f"{where}: `user`, when given, is a non-empty string")
        token = t.get("token")
        if isinstance(token, str) and token.strip():
            if token != token.strip() or any(c.isspace() for c in token):
                problems.append(f"{where}: `token` holds white space; a bearer token cannot")
            first = next((n for s, n in seen.items() if hmac.compare_digest(s, token)), None)
            if first is not None:
                problems.append(f"{where}: the same token as [[token]] #{first}; each token "
                                "must be unique (one token, one owner)")
            seen[token] = i
        if not problems:
            grants.append(Grant(token, t["owner"], t.get("user"), i))
    if problems:
        raise UsageError(f"--tokens {path} is refused: {len(problems)} problem(s)",
                         {"option": "--tokens", "path": path, "problems": problems})
    return grants


def find_grant(grants: list[Grant], presented: str) -> Grant | None:
    """The grant of a presented token, compared in constant time against every token (no early
    exit, so timing tells nothing about which or how many tokens exist)."""
    found = None
    candidate = presented.encode("utf-8", "surrogatepass")
    for g in grants:
        if hmac.compare_digest(g.token.encode("utf-8"), candidate):
            found = g
    return found
