"""``usagectl serve``: the v2 plan and tokens routes and the licence API's reports equal the CLI
views they answer from (docs/api.md), on a real server process; a token limited to one user
sees only that user's figures on each; malformed parameters are 422 in the error shape."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest

from tests.serve_helpers import (ALTERNATIVES, AS_OF, cli_json, serve_db,  # noqa: F401
                                 server)

pytestmark = pytest.mark.xdist_group("serve")

TERRA, LCA, DOC = "terra-pro-monthly", "lca-licence-2026", "docuscan-team-monthly"
#: Tokens in turn per owner (each has its own 30 requests a minute); the v2 tests use a–j.
_owner_tokens = {TERRA: itertools.cycle([f"terra-token-{c}" for c in "abcdef"]),
                 LCA: itertools.cycle([f"lca-token-{c}" for c in "abcdef"]),
                 DOC: itertools.cycle([f"docuscan-token-{c}" for c in "klmn"])}


def token(contract: str) -> str:
    return next(_owner_tokens[contract])


FILES = ["--view", "tokens", "--group-by", "resource_id", "--label", "filename"]
CONVERSATIONS = ["--view", "tokens", "--group-by", "session_id", "--label", "title"]

CASES = [
    # The plan route compares with the serve --alternatives file's plans of the same owner.
    ("/api/v2/usage/plan", TERRA, {}, ["--view", "plan", "--alternatives", str(ALTERNATIVES)]),
    ("/api/v2/usage/plan", TERRA, {"meter": "tokens"},
     ["--view", "plan", "--meter", "tokens", "--alternatives", str(ALTERNATIVES)]),
    # docuscan has no plan in that file: no recommendation, as without --alternatives.
    ("/api/v2/usage/plan", DOC, {}, ["--view", "plan"]),
    ("/api/v2/usage/plan", DOC, {"period": "previous"}, ["--view", "plan", "--period",
                                                         "previous"]),
    ("/api/v2/usage/tokens/files", TERRA, {}, [*FILES, "--limit", "100"]),
    ("/api/v2/usage/tokens/files", TERRA, {"limit": 3, "offset": 2},
     [*FILES, "--limit", "3", "--offset", "2"]),
    ("/api/v2/usage/tokens/conversations", TERRA, {"limit": 5}, [*CONVERSATIONS, "--limit", "5"]),
    ("/api/v2/usage/tokens/conversations", TERRA,
     {"from": "2026-11-10", "to": "2026-11-20", "limit": 4, "offset": 1},
     [*CONVERSATIONS, "--from", "2026-11-10", "--to", "2026-11-20", "--limit", "4",
      "--offset", "1"]),
    ("/api/v2/usage/tokens/files", TERRA, {"label": "title", "period": "previous"},
     ["--view", "tokens", "--group-by", "resource_id", "--label", "title", "--period",
      "previous", "--limit", "100"]),
    ("/api/licence/v1/reports/consolidated-summary", LCA, {}, ["--view", "consolidated"]),
    ("/api/licence/v1/reports/consolidated-summary", LCA,
     {"from": "2026-08-01", "to": "2026-10-01", "meter": "datasets"},
     ["--view", "consolidated", "--from", "2026-08-01", "--to", "2026-10-01", "--meter",
      "datasets"]),
    ("/api/licence/v1/reports/user-detail-summary", LCA, {}, ["--view", "users", "--detail"]),
    ("/api/licence/v1/reports/user-detail-summary", LCA, {"limit": 2, "offset": 1},
     ["--view", "users", "--detail", "--limit", "2", "--offset", "1"]),
    ("/api/licence/v1/reports/consumption-log", LCA, {"limit": 10, "offset": 5},
     ["--view", "log", "--limit", "10", "--offset", "5"]),
    ("/api/licence/v1/reports/consumption-log", LCA,
     {"status": "failed", "order": "desc", "limit": 20},
     ["--view", "log", "--status", "failed", "--order", "desc", "--limit", "20"]),
]


@pytest.mark.parametrize("path, contract, params, args", CASES)
def test_route_is_the_report_view(server, serve_db: Path, path: str, contract: str,
                                  params: dict, args: list[str]) -> None:
    r = server.get(path, token=token(contract), params=params)
    assert r.status_code == 200, r.text
    expected = cli_json(serve_db, "report", "-c", contract, *args, "--as-of", AS_OF)
    assert r.json() == expected


def test_the_served_figures_are_not_empty(server) -> None:
    """The equalities above compare real figures: a recommendation, labelled files and
    conversations, users with values, a page of the log."""
    plan = server.get("/api/v2/usage/plan", token=token(TERRA)).json()
    assert plan["recommendation"] is not None and len(plan["plans"]) == 4
    alone = server.get("/api/v2/usage/plan", token=token(DOC)).json()
    assert alone["recommendation"] is None
    assert [p["contract"] for p in alone["plans"]] == [DOC]  # never another owner's plans
    files = server.get("/api/v2/usage/tokens/files", token=token(TERRA),
                       params={"limit": 3}).json()
    assert files["total_count"] > 3 and files["has_more"]
    assert all(row["label"] for row in files["rows"])
    talks = server.get("/api/v2/usage/tokens/conversations", token=token(TERRA)).json()
    assert talks["rows"] and all("message_count" in row for row in talks["rows"])
    detail = server.get("/api/licence/v1/reports/user-detail-summary", token=token(LCA)).json()
    assert detail["users"] and detail["users"][0]["detail"]["datasets"]
    log = server.get("/api/licence/v1/reports/consumption-log", token=token(LCA),
                     params={"limit": 10}).json()
    assert len(log["events"]) == 10 and log["has_more"]


def test_tokens_monthly_is_the_tokens_view_of_each_month(server, serve_db: Path) -> None:
    r = server.get("/api/v2/usage/tokens/monthly", token=token(TERRA),
                   params={"from": "2026-09-01", "to": "2026-11-20"})
    assert r.status_code == 200, r.text
    doc = r.json()
    # Calendar months, each cut where a period (the 30th/31st) begins.
    assert [(m["month"], m["period_index"]) for m in doc["months"]] == [
        ("2026-09", 7), ("2026-09", 8), ("2026-10", 8), ("2026-10", 9), ("2026-11", 9)]
    totals = dict.fromkeys(doc["totals"], 0)
    for month in doc["months"]:
        view = cli_json(serve_db, "report", "-c", TERRA, "--view", "tokens", "--from",
                        month["from"], "--to", month["to"], "--as-of", AS_OF)
        assert month["products"] == view["rows"]
        assert month["totals"] == view["totals"]
        for k in totals:
            totals[k] += view["totals"][k]
    assert doc["totals"] == totals and totals["total_tokens"] > 0
    assert doc["range"] == {"from": "2026-09-01T00:00:00+00:00",
                            "to": "2026-11-20T00:00:00+00:00"}


def test_tokens_monthly_defaults_to_the_period(server, serve_db: Path) -> None:
    doc = server.get("/api/v2/usage/tokens/monthly", token=token(TERRA)).json()
    assert {m["period_index"] for m in doc["months"]} == {9}
    period = cli_json(serve_db, "report", "-c", TERRA, "--view", "tokens", "--as-of", AS_OF)
    assert doc["totals"] == period["totals"]


# --- A user's token ----------------------------------------------------------------------

USER_CASES = [
    ("/api/v2/usage/plan", DOC, "docuscan-user-token-7", "usr_greta", ["--view", "plan"]),
    ("/api/v2/usage/tokens/files", TERRA, "terra-user-token-8", "tk_live_agentx",
     [*FILES, "--limit", "100"]),
    ("/api/v2/usage/tokens/conversations", TERRA, "terra-user-token-8", "tk_live_agentx",
     [*CONVERSATIONS, "--limit", "100"]),
    ("/api/licence/v1/reports/consolidated-summary", LCA, "lca-user-token-9", "user-b",
     ["--view", "consolidated"]),
    ("/api/licence/v1/reports/user-detail-summary", LCA, "lca-user-token-9", "user-b",
     ["--view", "users", "--detail"]),
    ("/api/licence/v1/reports/consumption-log", LCA, "lca-user-token-9", "user-b",
     ["--view", "log", "--limit", "100"]),
]


@pytest.mark.parametrize("path, contract, user_token, user, args", USER_CASES)
def test_a_user_token_sees_only_its_users_figures(server, serve_db: Path, path: str,
                                                  contract: str, user_token: str, user: str,
                                                  args: list[str]) -> None:
    r = server.get(path, token=user_token)
    assert r.status_code == 200, r.text
    mine = cli_json(serve_db, "report", "-c", contract, *args, "--user", user, "--as-of", AS_OF)
    assert r.json() == mine and r.json()["user"] == user
    everyone = cli_json(serve_db, "report", "-c", contract, *args, "--as-of", AS_OF)
    assert r.json() != {**everyone, "user": user}  # the figures differ, not only the key


def test_a_user_token_gets_its_users_tokens_per_month(server, serve_db: Path) -> None:
    doc = server.get("/api/v2/usage/tokens/monthly", token="terra-user-token-8").json()
    assert doc["user"] == "tk_live_agentx"
    mine = cli_json(serve_db, "report", "-c", TERRA, "--view", "tokens", "--user",
                    "tk_live_agentx", "--as-of", AS_OF)
    everyone = cli_json(serve_db, "report", "-c", TERRA, "--view", "tokens", "--as-of", AS_OF)
    assert doc["totals"] == mine["totals"]
    assert 0 < doc["totals"]["total_tokens"] < everyone["totals"]["total_tokens"]


# --- Errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("path, contract, params", [
    ("/api/v2/usage/plan", DOC, {"period": "someday"}),
    ("/api/v2/usage/tokens/files", TERRA, {"limit": 0}),
    ("/api/v2/usage/tokens/files", TERRA, {"limit": "abc"}),
    ("/api/v2/usage/tokens/files", TERRA, {"offset": -1}),
    ("/api/v2/usage/tokens/files", TERRA, {"label": "  "}),
    ("/api/v2/usage/tokens/conversations", TERRA, {"from": "yesterday"}),
    ("/api/v2/usage/tokens/conversations", TERRA, {"from": "2026-11-18", "to": "2026-11-16"}),
    ("/api/v2/usage/tokens/monthly", TERRA, {"from": "2026-13-01"}),
    ("/api/v2/usage/tokens/monthly", TERRA, {"from": "2026-11-18", "to": "2026-11-16"}),
    ("/api/v2/usage/tokens/monthly", TERRA, {"from": "1900-01-01", "to": "2026-11-16"}),
    # Bounds outside the calendar once overflowed (a 500); ranges too wide to compute.
    ("/api/v2/usage/tokens/monthly", TERRA, {"from": "9999-12-31T23:00:00-05:00"}),
    ("/api/v2/usage/by-period", TERRA, {"from": "0001-01-01T00:00:00+05:00"}),
    ("/api/v2/usage/by-period", TERRA, {"from": "2026-11-01", "to": "9999-12-30"}),
    ("/api/v2/usage/by-period", TERRA, {"from": "2026-11-01", "to": "2999-12-01",
                                        "window": "day"}),
    ("/api/licence/v1/reports/consolidated-summary", LCA, {"from": "2026-01-01",
                                                           "to": "3000-05-01"}),
    ("/api/licence/v1/reports/consolidated-summary", LCA, {"period": "someday"}),
    ("/api/licence/v1/reports/user-detail-summary", LCA, {"limit": 0}),
    # A contract without a distinct meter has no values to list.
    ("/api/licence/v1/reports/user-detail-summary", DOC, {}),
    ("/api/licence/v1/reports/consumption-log", LCA, {"status": "maybe"}),
    ("/api/licence/v1/reports/consumption-log", LCA, {"order": "sideways"}),
])
def test_malformed_parameters_are_422_never_500(server, path: str, contract: str,
                                                params: dict) -> None:
    r = server.get(path, token=token(contract), params=params)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert list(error) == ["code", "message", "request_id", "details"]
    assert error["code"] == "validation_error"


def test_an_unknown_meter_is_404_and_another_owners_contract_403(server) -> None:
    r = server.get("/api/v2/usage/plan", token=token(TERRA), params={"meter": "credits"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for path in ("/api/v2/usage/plan", "/api/v2/usage/tokens/files",
                 "/api/v2/usage/tokens/monthly",
                 "/api/licence/v1/reports/consumption-log"):
        r = server.get(path, token=token(LCA), params={"contract": TERRA})
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "forbidden"


def test_every_new_route_needs_a_token_and_is_in_the_openapi_schema(server) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    for path in ("/api/v2/usage/plan", "/api/v2/usage/tokens/files",
                 "/api/v2/usage/tokens/conversations", "/api/v2/usage/tokens/monthly",
                 "/api/licence/v1/reports/consolidated-summary",
                 "/api/licence/v1/reports/user-detail-summary",
                 "/api/licence/v1/reports/consumption-log"):
        assert "200" in paths[path]["get"]["responses"] and "422" in paths[path]["get"][
            "responses"]
        r = server.get(path, token=None)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


# --- serve --alternatives -----------------------------------------------------------------

@pytest.mark.parametrize("text, problem", [
    (None, "cannot read contracts file"),
    ('[[contract]]\nid = "x"\n', "owner"),
])
def test_a_bad_alternatives_file_stops_the_start(tmp_path: Path, serve_db: Path,
                                                 text: str | None, problem: str) -> None:
    from typer.testing import CliRunner

    from tests.serve_helpers import TOKENS
    from usagectl.cli import app

    tokens = tmp_path / "tokens.toml"
    tokens.write_text(TOKENS)
    plans = tmp_path / "plans.toml"
    if text is not None:
        plans.write_text(text)
    r = CliRunner().invoke(app, ["--db", str(serve_db), "serve", "--tokens", str(tokens),
                                 "--alternatives", str(plans)])
    assert r.exit_code == 1, r.output
    assert problem in r.output and "plans.toml" in r.output
