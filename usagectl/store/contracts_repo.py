"""Contracts in the database: loaded whole from TOML, read back as ``Contract`` (SPEC §4)."""

from __future__ import annotations

import difflib
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from usagectl.contracts import Contract, contract_from_dict, load_contracts_file
from usagectl.errors import NotFoundError, ValidationError


def load_file(con: duckdb.DuckDBPyConnection, path: str | Path) -> list[dict[str, Any]]:
    """Validate a contracts file and store every contract in one transaction.

    Nothing is stored when any problem is found (the loader lists them all). A contract whose
    id is already stored is replaced and reported as ``updated`` (``unchanged`` when identical).
    """
    contracts = load_contracts_file(path)
    _refuse_case_twins(con, contracts, path)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    now = datetime.now(UTC)
    outcome = []
    con.execute("BEGIN TRANSACTION")
    try:
        for c in contracts:
            definition = json.dumps(c.to_dict(), sort_keys=True)
            old = con.execute("SELECT definition FROM contracts WHERE id = ?", [c.id]).fetchone()
            if old is None:
                action = "added"
            elif json.loads(old[0]) == json.loads(definition):
                action = "unchanged"
            else:
                action = "updated"
            if action != "unchanged":
                con.execute("DELETE FROM contracts WHERE id = ?", [c.id])
                con.execute("INSERT INTO contracts VALUES (?, ?, ?, ?, ?, ?)",
                            [c.id, c.owner, definition, str(path), digest, now])
            outcome.append({"id": c.id, "owner": c.owner, "action": action,
                            "meters": len(c.meters)})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return outcome


def _refuse_case_twins(con: duckdb.DuckDBPyConnection, contracts: list[Contract],
                       path: str | Path) -> None:
    """Ids are unique regardless of case (they name export files; docs/contracts.md): a new id
    that differs from a stored one only by case is refused, nothing is loaded."""
    problems = []
    for c in contracts:
        row = con.execute("SELECT id FROM contracts WHERE lower(id) = lower(?) AND id <> ? "
                          "ORDER BY id LIMIT 1", [c.id, c.id]).fetchone()
        if row is not None:
            problems.append(f"contract {c.id!r}: the database holds contract {row[0]!r}, which "
                            "differs only by case; ids are compared regardless of case, as export "
                            f"file names are on some file systems. Write {row[0]!r} to replace "
                            "it, or choose another id")
    if problems:
        raise ValidationError(f"{path}: {len(problems)} problem(s) in contracts file",
                              {"problems": problems})


def list_contracts(con: duckdb.DuckDBPyConnection, owner: str | None = None) -> list[Contract]:
    """Every stored contract (optionally one owner's), ordered by id."""
    rows = con.execute("SELECT definition FROM contracts WHERE ? IS NULL OR owner = ? ORDER BY id",
                       [owner, owner]).fetchall()
    return [contract_from_dict(json.loads(r[0])) for r in rows]


def get_contract(con: duckdb.DuckDBPyConnection, contract_id: str) -> Contract:
    """One contract by id; NotFoundError with a did-you-mean otherwise."""
    row = con.execute("SELECT definition FROM contracts WHERE id = ?", [contract_id]).fetchone()
    if row is None:
        ids = [r[0] for r in con.execute("SELECT id FROM contracts ORDER BY id").fetchall()]
        close = difflib.get_close_matches(contract_id, ids, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(ids) if ids else "none are loaded; run `usagectl contracts load FILE`"
        raise NotFoundError(f"no contract {contract_id!r}{hint}; contracts: {known}",
                            {"contract": contract_id, "contracts": ids})
    return contract_from_dict(json.loads(row[0]))
