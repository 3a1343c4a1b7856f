"""``usagectl serve`` against a real server process: Leaf's billing routes equal the CLI views
they map (docs/api.md), auth, isolation, errors, limits and locks."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.serve_helpers import AS_OF, cli_json, serve_db, server  # noqa: F401 (fixtures)
from usagectl.cli import app

pytestmark = pytest.mark.xdist_group("serve")

CONTRACT = "acme-farms-2026"
#: A week of October 2026 with new boundaries every day (the sample's busy period).
DAYS = ("2026-10-03", "2026-10-07")


@pytest.fixture
def db(serve_db: Path) -> Path:
    return serve_db


cli = cli_json


def leaf_instant(text: str) -> str:
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def local_midnight(day: str) -> str:
    """The sample contract's zone is America/Chicago: CDT until 1 November 2026."""
    return f"{day}T00:00:00{'-05:00' if day < '2026-11-01' else '-06:00'}"


# --- Leaf routes equal the CLI views -----------------------------------------------------

def test_contracts_list_is_contracts_list_per_area_meter(server, db: Path) -> None:
    r = server.get("/billing/contracts")
    assert r.status_code == 200, r.text
    expected = []
    for c in cli(db, "contracts", "list", "--as-of", AS_OF):
        if c["owner"] != "acme-farms":
            continue
        for m in c["meters"]:
            if m["aggregate"] != "unique_area":
                continue
            product = ("UNIFIED_AREA" if m["products"] in ([], ["*"])
                       else ",".join(m["products"]))
            expected.append({"id": f"{c['id']}:{m['name']}", "product": product,
                             "startDate": leaf_instant(c["current_period"]["start"]),
                             "endDate": leaf_instant(c["current_period"]["end"]),
                             "region": None})
    assert r.json() == expected
    # boundaries, machine files, unified and the derived operations meter (sample_data).
    assert len(expected) == 5
    assert r.headers["X-Total-Count"] == "5"


def test_contract_details_is_one_list_entry(server) -> None:
    listed = server.get("/billing/contracts").json()
    for entry in listed:
        r = server.get(f"/billing/contracts/{entry['id']}")
        assert r.status_code == 200, r.text
        assert r.json() == entry
    # A bare contract id is its first area meter.
    assert server.get(f"/billing/contracts/{CONTRACT}").json() == listed[0]


def test_consumption_of_a_day_is_the_users_and_consolidated_views(server, db: Path) -> None:
    day = DAYS[0]
    nxt = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    r = server.get(f"/billing/contracts/{CONTRACT}:boundaries/consumption",
                   params={"timestamp": f"{day}T00:00:00.000Z"})
    assert r.status_code == 200, r.text
    rng = ("-c", CONTRACT, "--meter", "boundaries", "--from", day, "--to", nxt, "--as-of", AS_OF)
    whole = cli(db, "report", "--view", "consolidated", *rng)
    users = cli(db, "report", "--view", "users", *rng)
    expected = {"areaUnit": "Acre", "date": local_midnight(day),
                "totalUniqueArea": whole["periods"][0]["meters"][0]["owner_total"],
                "leafUsersAreas": [{"leafUserId": u["user_id"],
                                    "totalArea": u["meters"]["boundaries"]}
                                   for u in users["users"]]}
    assert r.json() == expected
    assert expected["totalUniqueArea"] > 0 and len(expected["leafUsersAreas"]) >= 1


def _area_per_day(daily: dict, meter: str, level: str, start: str) -> list[dict]:
    out, total = [], 0.0
    for d in daily["days"]:
        value = d["meters"][meter][level]
        total = round(total + value, 6)
        if d["date"] >= start:
            out.append({"date": local_midnight(d["date"]), "totalArea": total,
                        "dailyArea": value})
    return out


def test_api_owner_range_is_the_daily_view_cumulated(server, db: Path) -> None:
    start, end = DAYS
    r = server.get(f"/billing/contracts/{CONTRACT}:boundaries/consumption/api-owner",
                   params={"startTime": f"{start}T00:00:00.000Z",
                           "endTime": f"{end}T00:00:00.000Z"})
    assert r.status_code == 200, r.text
    # The cumulative counts from the period's first day (1 October).
    daily = cli(db, "report", "-c", CONTRACT, "--view", "daily", "--meter", "boundaries",
                "--from", "2026-10-01", "--to", end, "--as-of", AS_OF)
    expected = _area_per_day(daily, "boundaries", "user", start)  # billed_on = "user"
    assert r.json() == {"areaUnit": "Acre", "areaPerDay": expected}
    assert [d["date"][:10] for d in expected] == ["2026-10-03", "2026-10-04", "2026-10-05",
                                                  "2026-10-06"]
    assert expected[0]["totalArea"] > expected[0]["dailyArea"] > 0


def test_owner_billed_meter_uses_the_owner_column(server, db: Path) -> None:
    start, end = DAYS
    r = server.get(f"/billing/contracts/{CONTRACT}:unified/consumption/api-owner",
                   params={"startTime": start, "endTime": end})
    daily = cli(db, "report", "-c", CONTRACT, "--view", "daily", "--meter", "unified",
                "--from", "2026-10-01", "--to", end, "--as-of", AS_OF)
    assert r.json()["areaPerDay"] == _area_per_day(daily, "unified", "owner", start)


def test_leaf_user_range_is_the_daily_view_of_that_user(server, db: Path) -> None:
    start, end = DAYS
    r = server.get(f"/billing/contracts/{CONTRACT}:boundaries/consumption/leaf-user/agri-ames",
                   params={"startTime": start, "endTime": end})
    assert r.status_code == 200, r.text
    daily = cli(db, "report", "-c", CONTRACT, "--view", "daily", "--meter", "boundaries",
                "--user", "agri-ames", "--from", "2026-10-01", "--to", end, "--as-of", AS_OF)
    assert r.json() == {"areaUnit": "Acre",
                        "areaPerDay": _area_per_day(daily, "boundaries", "user", start)}
    assert r.json() != server.get(
        f"/billing/contracts/{CONTRACT}:boundaries/consumption/api-owner",
        params={"startTime": start, "endTime": end}).json()


# --- Who sees what ----------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"},
                                     {"Authorization": "Basic YWNtZTpzZWNyZXQ="},
                                     {"Authorization": "Bearer acme-owner-token-1x"}])
def test_a_request_without_a_valid_token_is_401(server, headers: dict) -> None:
    r = server.get("/billing/contracts", token=None, headers=headers)
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == "unauthorized"
    assert set(error) == {"code", "message", "request_id", "details"}
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_another_owners_contract_is_403_and_a_missing_one_404(server) -> None:
    for path in (f"/billing/contracts/{CONTRACT}", f"/billing/contracts/{CONTRACT}:satellite",
                 f"/billing/contracts/{CONTRACT}:boundaries/consumption/api-owner"):
        r = server.get(path, token="lca-owner-token-3")
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
    assert server.get("/billing/contracts", token="lca-owner-token-3").json() == []
    r = server.get("/billing/contracts/acme-farms-2027")
    assert r.status_code == 404
    # The message names no other contract (a CLI message suggests the closest id).
    assert r.json()["error"]["code"] == "not_found" and CONTRACT not in r.text
    assert server.get(f"/billing/contracts/{CONTRACT}:no_meter").status_code == 404


def test_a_user_token_sees_only_its_users_figures(server, db: Path) -> None:
    start, end = DAYS
    mine = server.get(f"/billing/contracts/{CONTRACT}:boundaries/consumption/api-owner",
                      token="acme-ames-token-2", params={"startTime": start, "endTime": end})
    assert mine.status_code == 200
    daily = cli(db, "report", "-c", CONTRACT, "--view", "daily", "--meter", "boundaries",
                "--user", "agri-ames", "--from", "2026-10-01", "--to", end, "--as-of", AS_OF)
    assert mine.json()["areaPerDay"] == _area_per_day(daily, "boundaries", "user", start)
    day = server.get(f"/billing/contracts/{CONTRACT}:boundaries/consumption",
                     token="acme-ames-token-2", params={"timestamp": start}).json()
    assert {u["leafUserId"] for u in day["leafUsersAreas"]} <= {"agri-ames"}
    other = server.get(f"/billing/contracts/{CONTRACT}:boundaries/consumption/leaf-user/agri-polk",
                       token="acme-ames-token-2")
    assert other.status_code == 403


def test_tokens_are_never_logged(server) -> None:
    server.get("/billing/contracts")
    server.get("/billing/contracts", token="a-wrong-secret-token")
    time.sleep(0.5)  # the access log is written after the response
    out = server.output()
    assert "GET /billing/contracts" in out  # the log is there …
    assert "acme-owner-token-1" not in out and "a-wrong-secret-token" not in out  # … tokens not


# --- Errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("path, status, code", [
    ("/no/such/route", 404, "not_found"),
    (f"/billing/contracts/{CONTRACT}:boundaries/consumption?timestamp=yesterday", 422,
     "validation_error"),
    (f"/billing/contracts/{CONTRACT}:boundaries/consumption/api-owner?startTime=2026-13-01", 422,
     "validation_error"),
    (f"/billing/contracts/{CONTRACT}:boundaries/consumption/api-owner"
     "?startTime=2026-10-01&endTime=2027-02-01", 422, "validation_error"),
    (f"/billing/contracts/{CONTRACT}:boundaries/consumption/api-owner?startTime=2019-01-01", 422,
     "validation_error"),
])
def test_errors_have_the_land_data_shape(server, path: str, status: int, code: str) -> None:
    r = server.get(path)
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ["code", "message", "request_id", "details"]
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == r.headers["X-Request-Id"]


def test_method_not_allowed_is_405_in_the_error_shape(server) -> None:
    r = httpx.post(server.url + "/billing/contracts",
                   headers={"Authorization": "Bearer acme-owner-token-1c"})
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_request_id_is_echoed_or_made(server) -> None:
    r = server.get("/billing/contracts", headers={"X-Request-Id": "req-42.a"})
    assert r.headers["X-Request-Id"] == "req-42.a"
    made = server.get("/billing/contracts").headers["X-Request-Id"]
    assert made and made != "req-42.a"
    r = server.get("/nope", headers={"X-Request-Id": "req-43"})
    assert r.json()["error"]["request_id"] == "req-43" == r.headers["X-Request-Id"]


def test_rate_limit_is_30_a_minute_per_token(server) -> None:
    codes = [server.get("/billing/contracts", token="acme-limits-token-4").status_code
             for _ in range(31)]
    assert codes[:30] == [200] * 30
    assert codes[30] == 429
    r = server.get("/billing/contracts", token="acme-limits-token-4")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # Another token of the same owner has its own minute.
    assert server.get("/billing/contracts", token="acme-docs-token-5").status_code == 200


def test_openapi_lists_every_route(server) -> None:
    r = httpx.get(server.url + "/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in ("/billing/contracts", "/billing/contracts/{contract_id}",
                 "/billing/contracts/{contract_id}/consumption",
                 "/billing/contracts/{contract_id}/consumption/api-owner",
                 "/billing/contracts/{contract_id}/consumption/leaf-user/{user_id}"):
        assert path in paths
        assert "200" in paths[path]["get"]["responses"]


# --- Alongside an ingest -----------------------------------------------------------------

def test_a_locked_database_is_503_with_retry_after(server, db: Path) -> None:
    # A writer holding the file (as an ingest does during its commit) past the request's wait.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = server.get("/billing/contracts")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_locked"
        assert int(r.headers["Retry-After"]) >= 1
        assert str(db) not in r.text  # no file path or process id leaks to a client
    finally:
        holder.kill()
        holder.wait()
    assert server.get("/billing/contracts").status_code == 200


# --- The tokens file ---------------------------------------------------------------------

@pytest.mark.parametrize("text, problem", [
    ('[[token]]\ntoken = "abc"\n', "`owner` is required"),
    ('[[token]]\ntoken = "abc"\nowner = "o"\n[[token]]\ntoken = "abc"\nowner = "p"\n',
     "the same token as [[token]] #1"),
    ('[[token]]\ntoken = "abc"\nowner = "o"\nrole = "admin"\n', "unknown keys role"),
    ('title = "x"\n', "unknown top-level keys title"),
    ("# nothing yet\n", "no [[token]] table"),
    ('[[token]\n', "not valid TOML"),
])
def test_a_bad_tokens_file_is_a_usage_error(tmp_path: Path, db: Path, text: str,
                                            problem: str) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    r = CliRunner().invoke(app, ["--db", str(db), "serve", "--tokens", str(path)])
    assert r.exit_code == 2, r.output
    assert problem in r.output
    assert "abc" not in r.output.replace("[[token]]", "")  # a token is never quoted


def test_a_missing_tokens_file_is_a_usage_error(tmp_path: Path, db: Path) -> None:
    r = CliRunner().invoke(app, ["--db", str(db), "serve", "--tokens", str(tmp_path / "no.toml")])
    assert r.exit_code == 2
    assert "no such file" in r.output
