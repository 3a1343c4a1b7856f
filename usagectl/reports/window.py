"""Which contract, period and moment a report is about (SPEC §5.5).

A report names a contract (stored, or from a what-if ``--contracts`` file), a period
(``current``, ``previous``, an index or a date inside it), the moment taken as now (``--as-of``)
and optionally the ingest cut-off (``--as-ingested-at``). :func:`open_window` resolves all four
into the :class:`~usagectl.meters.select.Window` every view computes over.
"""

from __future__ import annotations

import duckdb

from usagectl.contracts import parse_as_of, resolve_period
from usagectl.errors import NotFoundError
from usagectl.meters.select import Window
from usagectl.store import contracts_repo


def open_window(con: duckdb.DuckDBPyConnection, contract_id: str, period: str | None,
                as_of: str | None, as_ingested_at: str | None = None,
                contracts_file: str | None = None, user: str | None = None) -> Window:
    """The window of one report: contract terms, period, as-of, ingest cut-off and user."""
    if contracts_file:
        from usagectl.contracts import load_contracts_file

        terms = {c.id: c for c in load_contracts_file(contracts_file)}
        if contract_id not in terms:
            raise NotFoundError(f"{contracts_file} has no contract {contract_id!r}; it has: "
                                f"{', '.join(sorted(terms)) or '(none)'}")
        contract = terms[contract_id]
    else:
        contract = contracts_repo.get_contract(con, contract_id)
    now = parse_as_of(as_of)
    ingested = parse_as_of(as_ingested_at) if as_ingested_at else None
    return Window(contract, resolve_period(contract, period, now), now, ingested, user)
