"""Meter filters (SPEC §4): glob patterns in `endpoints`/`operations`, `--user`, and the stderr
notes for a filter that matches nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write

GATEWAY = "timestamp,X-User-ID,endpoint,operation,status_code,dataset_id,input_tokens,product\n" + "".join([
    "2026-03-02T10:00:00Z,u1,/datasets,read,200,1,10,API\n",
    "2026-03-02T11:00:00Z,u1,/datasets/123,read,200,2,20,API\n",
    "2026-03-03T10:00:00Z,u2,/datasets/search,search,200,,40,API\n",
    "2026-03-03T11:00:00Z,u2,/v1/datasets,read,200,3,80,API\n",
    "2026-03-04T10:00:00Z,u2,/items[0],write,200,,160,API\n",
    "2026-03-04T11:00:00Z,u3,/items0,write,200,,320,API\n",
    "2026-03-05T10:00:00Z,u3,/health,ping,200,,640,API\n",
])


def contract(*meters: str) -> str:
    head = '[[contract]]\nid = "gw"\nowner = "lic"\nstart = 2026-03-01\ncycle = "monthly"\n'
    return head + "".join(f'  [[contract.meter]]\n  aggregate = "sum"\n  fields = ["input_tokens"]\n{m}'
                          for m in meters)


@pytest.fixture
def gw(cli, tmp_path: Path):  # noqa: ANN201
    def load(*meters: str):  # noqa: ANN202
        r = cli("contracts", "load", write(tmp_path / "c.toml", contract(*meters)), "--format", "json")
        assert r.exit_code == 0, r.stdout
        return cli

    r = cli("ingest", write(tmp_path / "g.csv", GATEWAY), "--owner", "lic", "--format", "json")
    assert r.json()["totals"]["accepted"] == 7, r.stdout
    return load


AS_OF = "2026-03-10T00:00:00Z"


def totals(cli, *extra: str) -> dict:  # noqa: ANN001
    r = cli("report", "-c", "gw", "--as-of", AS_OF, "--format", "json", *extra)
    assert r.exit_code == 0, r.stdout + r.stderr
    return {m["name"]: m["owner_total"] for m in r.json()["meters"]}


def test_endpoint_and_operation_globs(gw) -> None:
    cli = gw('  name = "star"\n  endpoints = ["/datasets*"]\n',
             '  name = "exact"\n  endpoints = ["/datasets"]\n',
             '  name = "one_segment"\n  endpoints = ["/datasets/?*", "/health"]\n',
             '  name = "ops"\n  operations = ["re*", "s?arch"]\n')
    assert totals(cli) == {
        "star": 10 + 20 + 40,          # /datasets, /datasets/123, /datasets/search; not /v1/datasets
        "exact": 10,                   # an entry without * ? [ is an exact value
        "one_segment": 20 + 40 + 640,  # /datasets/123, /datasets/search, and /health exactly
        "ops": 10 + 20 + 80 + 40,      # read ×3, search
    }


def test_an_entry_with_glob_characters_still_matches_itself(gw) -> None:
    # "/items[0]" read as a glob is the class [0]: it matches "/items0"; the literal endpoint
    # "/items[0]" must still count, since a value always matches itself exactly.
    cli = gw('  name = "literal"\n  endpoints = ["/items[0]"]\n')
    assert totals(cli) == {"literal": 160 + 320}


# --- 21. the unit of non-area meters -----------------------------------------------------------

def test_non_area_meters_show_what_they_count(cli, tmp_path: Path) -> None:
    toml = '[[contract]]\nid = "u"\nowner = "lic"\nstart = 2026-03-01\ncycle = "monthly"\n' + "".join(
        f'  [[contract.meter]]\n  name = "{name}"\n{body}' for name, body in [
            ("tokens", '  aggregate = "sum"\n  fields = ["input_tokens"]\n'),
            ("calls", '  aggregate = "count"\n'),
            ("datasets", '  aggregate = "distinct"\n  field = "dataset_id"\n'),
            ("people", '  aggregate = "distinct"\n  field = "user_id"\n'),
            ("licences", '  aggregate = "count"\n  unit = "licence checks"\n'),
        ])
    r = cli("contracts", "load", write(tmp_path / "c.toml", toml), "--format", "json")
    assert r.exit_code == 0, r.stdout
    cli("ingest", write(tmp_path / "g.csv", GATEWAY), "--owner", "lic")
    doc = cli("report", "-c", "u", "--as-of", AS_OF, "--format", "json").json()
    units = {m["name"]: m["unit"] for m in doc["meters"]}
    assert units == {"tokens": "tokens", "calls": "requests", "datasets": "datasets",
                     "people": "users", "licences": "licence checks"}
    table = cli("report", "-c", "u", "--as-of", AS_OF, env={"COLUMNS": "200"}).stdout
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                          for line in table.splitlines() if line.count("│") > 3)}
    assert rows["tokens"][1] == "tokens" and rows["licences"][1] == "licence checks"
    assert rows["calls"][1] == "requests" and rows["people"][1] == "users"
    # Counts show as integers: 7 requests billed, not 7.00.
    assert rows["calls"][4] == "7" and rows["datasets"][4] == "3"


def test_an_area_meter_keeps_its_area_units(cli, tmp_path: Path) -> None:
    toml = ('[[contract]]\nid = "a"\nowner = "o"\nstart = 2026-03-01\ncycle = "monthly"\n'
            '  [[contract.meter]]\n  name = "m"\n  aggregate = "unique_area"\n  unit = "furlong"\n')
    r = cli("contracts", "load", write(tmp_path / "c.toml", toml), "--format", "json")
    assert r.exit_code != 0 and "unit must be one of" in r.stdout


# --- 20. a user's reports ------------------------------------------------------------------------

def user_window(db_path: Path, user: str | None):  # noqa: ANN201
    from usagectl.contracts import parse_as_of, resolve_period
    from usagectl.reports import views
    from usagectl.store import contracts_repo
    from usagectl.store.db import session

    def run(fn, *args):  # noqa: ANN001, ANN202
        with session(str(db_path), read_only=True) as con:
            c = contracts_repo.get_contract(con, "gw")
            now = parse_as_of(AS_OF)
            return fn(con, views.make_window(c, resolve_period(c, None, now), now, user=user), *args)

    return run


def test_a_user_window_filters_every_view(gw, db_path: Path) -> None:
    from usagectl.reports import views

    gw('  name = "tokens"\n', '  name = "datasets"\n  endpoints = ["/datasets*"]\n')
    run = user_window(db_path, "u2")
    doc = run(views.consolidated)
    m = {x["name"]: x for x in doc["meters"]}
    # u2: /datasets/search 40, /v1/datasets 80, /items[0] 160
    assert m["tokens"]["owner_total"] == m["tokens"]["billed"] == 280
    assert m["datasets"]["owner_total"] == 40  # only /datasets/search matches for u2
    assert (doc["user"], doc["users"], doc["events_counted"]) == ("u2", 1, 3)
    assert [u["user_id"] for u in run(views.users_view)["users"]] == ["u2"]
    daily = run(views.daily_view)
    assert {d["date"]: d["meters"]["tokens"]["owner"] for d in daily["days"]
            if d["meters"]["tokens"]["owner"]} == {"2026-03-03": 120, "2026-03-04": 160}
    log = run(views.log_view, None, None, 0)
    assert {e["user_id"] for e in log["events"]} == {"u2"} and log["total_count"] == 3
    series = run(views.series_view, None, "day")
    assert sum(r["meters"]["tokens"] for r in series["series"]) == 280
    top = run(views.top_view, None, "endpoint", None)
    assert [r["key"] for r in top["rows"]] == ["/items[0]", "/v1/datasets", "/datasets/search"]
    nobody = user_window(db_path, "ghost")(views.consolidated)
    assert (nobody["users"], nobody["events_counted"]) == (0, 0)
    assert all(x["owner_total"] == 0 for x in nobody["meters"])


# --- 2. a meter that counts nothing says why ----------------------------------------------------

def test_a_meter_that_matches_nothing_gets_a_note(gw, db_path: Path) -> None:
    from usagectl.reports import notes

    gw('  name = "datasets"\n  endpoints = ["/dataset"]\n',          # typo: matches nothing
       '  name = "ok"\n  endpoints = ["/datasets*"]\n',
       '  name = "typo"\n  products = ["APi"]\n')
    got = user_window(db_path, None)(lambda con, w: notes.report_notes(con, w, w.contract.meters))
    assert got == [
        "meter datasets counts 0: it filters endpoints ['/dataset'], successful events only; "
        "the period's events (7) have endpoints /datasets (1), /datasets/123 (1), "
        "/datasets/search (1), /health (1), /items0 (1), and 2 more; 7 succeeded",
        "meter typo counts 0: it filters products ['APi'], successful events only; the period's "
        "events (7) have products API (7); 7 succeeded",
        "meter typo: product 'APi' appears in no stored event of owner lic; its products are API (7)",
    ]


def test_no_note_for_an_empty_period_and_a_note_for_an_unknown_user(gw, db_path: Path) -> None:
    from usagectl.contracts import parse_as_of, resolve_period
    from usagectl.reports import notes, views
    from usagectl.store import contracts_repo
    from usagectl.store.db import session

    gw('  name = "datasets"\n  endpoints = ["/dataset"]\n')
    with session(str(db_path), read_only=True) as con:
        c = contracts_repo.get_contract(con, "gw")
        now = parse_as_of("2026-05-10T00:00:00Z")  # May: no events at all
        window = views.make_window(c, resolve_period(c, None, now), now)
        assert notes.report_notes(con, window, c.meters) == []
        now = parse_as_of(AS_OF)
        window = views.make_window(c, resolve_period(c, None, now), now, user="ghost")
        got = notes.report_notes(con, window, c.meters)
    assert got == [
        "figures are for user ghost only; limits, included allotments and prices are the whole "
        "owner's, so status, overage and amount price this user's usage alone",
        "no events for user ghost in this period",
    ]


# --- the command line: --user and the notes on stderr -------------------------------------------

def test_report_user_option_on_every_view(gw) -> None:
    cli = gw('  name = "tokens"\n')
    r = cli("report", "-c", "gw", "--as-of", AS_OF, "--user", "u2", "--format", "json")
    doc = r.json()  # stdout is JSON only; the notes went to stderr
    assert doc["user"] == "u2" and doc["meters"][0]["billed"] == 280
    assert "figures are for user u2 only" in r.stderr
    # Leaf's per-user usage range: the daily view of one user between two days.
    daily = cli("report", "-c", "gw", "--as-of", AS_OF, "--user", "u2", "--view", "daily",
                "--from", "2026-03-03", "--to", "2026-03-05", "--format", "json").json()  # [from, to)
    assert [(d["date"], d["meters"]["tokens"]["owner"]) for d in daily["days"]] == [
        ("2026-03-03", 120), ("2026-03-04", 160)]
    for view in ("users", "log", "series", "top"):
        v = cli("report", "-c", "gw", "--as-of", AS_OF, "--user", "u3", "--view", view,
                "--format", "json")
        assert v.exit_code == 0 and v.json()["user"] == "u3", (view, v.stdout)
    table = cli("report", "-c", "gw", "--as-of", AS_OF, "--user", "u2")
    assert "u2" in table.stdout.splitlines()[0]
    ghost = cli("report", "-c", "gw", "--as-of", AS_OF, "--user", "ghost", "--format", "json")
    assert ghost.exit_code == 0 and ghost.json()["events_counted"] == 0
    assert "no events for user ghost in this period" in ghost.stderr
    quiet = cli("report", "-c", "gw", "--as-of", AS_OF, "--user", "ghost", "-q", "--format", "json")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_zero_count_notes_on_stderr_of_report_usage_alerts_and_export(gw, tmp_path: Path) -> None:
    cli = gw('  name = "datasets"\n  endpoints = ["/dataset"]\n  limit = 1\n',
             '  name = "all"\n  limit = 100\n')
    note = "meter datasets counts 0: it filters endpoints ['/dataset']"
    r = cli("report", "-c", "gw", "--as-of", AS_OF, "--format", "json")
    assert r.json()["meters"][0]["billed"] == 0 and note in r.stderr
    assert note in cli("report", "-c", "gw", "--as-of", AS_OF).stderr  # a table report too
    r = cli("usage", "--owner", "lic", "--as-of", AS_OF, "--format", "json")
    assert r.json() and f"gw: {note}" in r.stderr
    r = cli("alerts", "--as-of", AS_OF, "--format", "json")
    assert r.exit_code == 3 and f"gw: {note}" in r.stderr  # all: 1,270 of 100
    r = cli("export", "--contract", "gw", "--as-of", AS_OF, "--out-dir", tmp_path / "x",
            "--format", "json")
    assert r.exit_code == 0 and f"gw: {note}" in r.stderr
    for args in (("report", "-c", "gw"), ("usage", "--owner", "lic"), ("alerts",)):
        assert cli(*args, "--as-of", AS_OF, "-q", "--format", "json").stderr == ""


AREA = """
[[contract]]
id = "fields"
owner = "acme"
start = 2026-01-01
cycle = "quarterly"

  [[contract.meter]]
  name = "area"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
"""


def test_a_user_s_area_report_keeps_its_own_stored_tiles(cli, tmp_path: Path, db_path: Path) -> None:
    import duckdb

    box = "POLYGON((-93.6 42, -93.59 42, -93.59 42.01, -93.6 42.01, -93.6 42))"
    far = "POLYGON((-90.6 40, -90.59 40, -90.59 40.01, -90.6 40.01, -90.6 40))"
    cli("contracts", "load", write(tmp_path / "c.toml", AREA))
    cli("ingest", write(tmp_path / "e.csv", "event_id,ts,owner_id,user_id,product,geometry\n"
                        f'a,2026-01-05T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{box}"\n'
                        f'b,2026-01-06T10:00:00Z,acme,u2,FIELDS_BOUNDARY,"{far}"\n'))
    whole = cli("report", "-c", "fields", "--as-of", "2026-02-01", "--format", "json").json()
    one = cli("report", "-c", "fields", "--as-of", "2026-02-01", "--user", "u1", "--format",
              "json").json()
    assert one["meters"][0]["billed"] < whole["meters"][0]["billed"]
    ov = cli("overlap", "-c", "fields", "--as-of", "2026-02-01", "--user", "u1", "--format",
             "json").json()
    assert [u["user_id"] for u in ov["users"]] == ["u1"] and ov["owner_total"] == one["meters"][0]["owner_total"]
    with duckdb.connect(str(db_path), read_only=True) as con:
        scopes = {s for (s,) in con.execute("SELECT DISTINCT scope FROM area_tiles").fetchall()}
    assert len(scopes) == 2 and sum("|user=u1|" in s for s in scopes) == 1
