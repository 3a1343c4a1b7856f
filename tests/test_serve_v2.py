"""``usagectl serve``: the land-data API's usage routes and the v2 routes equal the CLI views
they answer from (docs/api.md), on a real server process."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest

from tests.serve_helpers import AS_OF, cli_json, serve_db, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.xdist_group("serve")

DOC = "docuscan-team-monthly"
#: One token per test: each has its own 30 requests a minute.
_tokens = itertools.cycle([f"docuscan-token-{c}" for c in "abcdefghi"])


@pytest.fixture
def token() -> str:
    return next(_tokens)


# --- Land-data API -----------------------------------------------------------------------

def test_usage_is_the_usage_commands_token_row(server, serve_db: Path) -> None:
    r = server.get("/api/public/v1/usage/", token="terra-token-6")
    assert r.status_code == 200, r.text
    rows = cli_json(serve_db, "usage", "--owner", "terra-tokens", "--as-of", AS_OF)
    row = rows[0]
    assert "tokens_used" in row
    assert r.json() == {"tier": row["tier"], "tokens_used": row["tokens_used"],
                        "tokens_included": row["tokens_included"],
                        "tokens_overage": row["tokens_overage"],
                        "overage_cents": row["overage_amount_cents"],
                        "period_start": row["period_start"], "period_end": row["period_end"]}
    assert r.json()["overage_cents"] > 0


def test_usage_breakdown_is_the_usage_commands_rows(server, serve_db: Path) -> None:
    r = server.get("/api/public/v1/usage/breakdown/", token="terra-token-6")
    rows = cli_json(serve_db, "usage", "--owner", "terra-tokens", "--as-of", AS_OF)
    assert r.json() == rows and len(rows) == 2
    assert r.headers["X-Total-Count"] == "2"


def test_an_owner_without_tokens_gets_zeros(server, serve_db: Path, token: str) -> None:
    # docuscan's contract counts credits and requests, no tokens: its tier, zero tokens.
    r = server.get("/api/public/v1/usage/", token=token).json()
    assert r["tier"] == "team"
    assert (r["tokens_used"], r["tokens_included"], r["tokens_overage"], r["overage_cents"]) == (
        0, 0, 0, 0)


def test_a_user_token_cannot_read_owner_totals(server) -> None:
    r = server.get("/api/public/v1/usage/", token="docuscan-user-token-7")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"


# --- v2 routes equal the report views ---------------------------------------------------

CASES = [
    ("/api/v2/usage/summary", {}, ["--view", "consolidated"]),
    ("/api/v2/usage/summary", {"period": "previous", "meter": "credits"},
     ["--view", "consolidated", "--period", "previous", "--meter", "credits"]),
    ("/api/v2/usage/details", {"limit": 5, "offset": 3, "status": "failed", "order": "desc"},
     ["--view", "log", "--limit", "5", "--offset", "3", "--status", "failed", "--order", "desc"]),
    ("/api/v2/usage/details", {"from": "2026-11-16", "to": "2026-11-18", "limit": 100},
     ["--view", "log", "--from", "2026-11-16", "--to", "2026-11-18", "--limit", "100"]),
    ("/api/v2/usage/by-period", {"from": "2026-10-01", "to": "2026-11-20", "window": "week"},
     ["--view", "consolidated", "--from", "2026-10-01", "--to", "2026-11-20", "--window",
      "week"]),
    ("/api/v2/usage/top-endpoints", {"limit": 3},
     ["--view", "requests", "--group-by", "endpoint", "--limit", "3"]),
    ("/api/v2/usage/breakdown", {"group_by": "error_code"},
     ["--view", "requests", "--group-by", "error_code"]),
    ("/api/v2/usage/breakdown", {}, ["--view", "requests"]),
    ("/api/v2/usage/dashboard-analytics", {"bucket": "day", "group_by": "product"},
     ["--view", "series", "--bucket", "day", "--group-by", "product"]),
]


@pytest.mark.parametrize("path, params, args", CASES)
def test_v2_route_is_the_report_view(server, serve_db: Path, token: str, path: str,
                                     params: dict, args: list[str]) -> None:
    r = server.get(path, token=token, params=params)
    assert r.status_code == 200, r.text
    expected = cli_json(serve_db, "report", "-c", DOC, *args, "--as-of", AS_OF)
    assert r.json() == expected


def test_a_user_token_gets_the_user_view(server, serve_db: Path) -> None:
    r = server.get("/api/v2/usage/summary", token="docuscan-user-token-7")
    expected = cli_json(serve_db, "report", "-c", DOC, "--user", "usr_greta", "--as-of", AS_OF)
    assert r.json() == expected
    assert r.json() != cli_json(serve_db, "report", "-c", DOC, "--as-of", AS_OF)


@pytest.mark.parametrize("amount, exit_code", [("2", 0), ("500", 3)])
def test_check_is_the_check_command(server, serve_db: Path, token: str, amount: str,
                                    exit_code: int) -> None:
    r = httpx.post(server.url + "/api/v2/usage/check",
                   headers={"Authorization": f"Bearer {token}"},
                   json={"meter": "credits", "amount": amount}, timeout=60)
    assert r.status_code == 200, r.text
    expected = cli_json(serve_db, "check", "-c", DOC, "--meter", "credits", "--amount", amount,
                        "--as-of", AS_OF, exit_code=exit_code)
    assert r.json() == expected


def test_check_has_its_own_limit_of_60(server) -> None:
    token = "docuscan-token-j"  # not handed out by the `token` fixture's first nine
    post = [httpx.post(server.url + "/api/v2/usage/check",
                       headers={"Authorization": f"Bearer {token}"},
                       json={"meter": "credits", "amount": "1"}, timeout=60).status_code
            for _ in range(61)]
    assert post[:60] == [200] * 60 and post[60] == 429
    # The other routes' minute is separate.
    assert server.get("/api/v2/usage/summary", token=token).status_code == 200


@pytest.mark.parametrize("path, params", [
    ("/api/v2/usage/details", {"limit": "abc"}),
    ("/api/v2/usage/details", {"limit": 0}),
    ("/api/v2/usage/details", {"status": "maybe"}),
    ("/api/v2/usage/details", {"from": "yesterday"}),
    ("/api/v2/usage/details", {"from": "2026-11-18", "to": "2026-11-16"}),
    ("/api/v2/usage/by-period", {"window": "year"}),
    ("/api/v2/usage/summary", {"period": "someday"}),
    ("/api/v2/usage/breakdown", {"group_by": "colour"}),
    ("/api/v2/usage/dashboard-analytics", {"bucket": "week"}),
])
def test_malformed_parameters_are_422_never_500(server, token: str, path: str,
                                                params: dict) -> None:
    r = server.get(path, token=token, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"


def test_an_unknown_meter_is_404_naming_the_meters(server, token: str) -> None:
    r = server.get("/api/v2/usage/summary", token=token, params={"meter": "no_such_meter"})
    assert r.status_code == 404
    assert r.json()["error"]["details"]["meters"] == ["credits", "requests"]


@pytest.mark.parametrize("body", [{}, {"meter": "credits"}, {"meter": "credits", "amount": -1},
                                  {"meter": "credits", "amount": "lots"}, []])
def test_a_malformed_check_body_is_422(server, token: str, body: object) -> None:
    r = httpx.post(server.url + "/api/v2/usage/check", json=body, timeout=60,
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422, r.text
    assert list(r.json()["error"]) == ["code", "message", "request_id", "details"]


def test_usage_computes_the_token_meter_alone_with_the_same_answer(serve_db: Path) -> None:
    # GET /api/public/v1/usage/ computes only the first token meter (or none): its answer is the
    # one derived from every meter's row, for every owner of the sample and one without contracts.
    from datetime import datetime

    from usagectl.reports import status
    from usagectl.server.landdata import usage_doc
    from usagectl.store.db import session

    as_of = datetime.fromisoformat(AS_OF.replace("Z", "+00:00"))
    with session(serve_db, read_only=True) as con:
        owners = [o for (o,) in con.execute("SELECT DISTINCT owner FROM contracts").fetchall()]
        assert len(owners) >= 3
        for owner in [*owners, "nobody"]:
            every = status.usage(con, owner, as_of)
            alone = status.usage(con, owner, as_of, first_token_meter=True)
            assert len(alone) == 1
            assert usage_doc(alone) == usage_doc(every), owner
