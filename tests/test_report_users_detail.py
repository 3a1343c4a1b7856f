"""Issue 13 item 6: ``report --view users --detail`` — which datasets and indicators each user
(and each organisation) accessed, the licence API's user detail summary; and item 8's remainder:
``export --views`` takes every view of the registry and ``overlap``, each file equal to the
report's own CSV.

The gateway log below is a licence API's: request URLs split by ``--route``. Owner ``lab``,
March 2026 (UTC); the meters count successful ``/datasets/{dataset_id}`` calls that requested at
least one indicator.

    id  time (UTC)      user org    dataset indicators   status  counted?
    e1  03-02 09:00     ann  org-1  12345   964,897,962  200     yes
    e2  03-03 10:00     ann  org-1  12345   964          200     yes
    e3  03-04 11:00     ann  org-1  777     901          200     yes
    e4  03-05 12:00     bob  org-1  12345   897,933      200     yes
    e5  03-06 08:00     bob  -      55      964          200     yes (no org)
    e6  03-06 09:00     bob  org-1  888     111          429     no: failed
    e7  03-07 09:00     bob  org-1  999     -            200     no: no indicator (require)
    e9  03-08 00:00     bob  org-1  55      964,964      200     yes (964 twice in one call)
    e8  03-10 00:00     ann  org-1  4242    5            200     yes; --to 2026-03-10 leaves it out

By hand, the whole of March up to the as-of 2026-03-20:

The contract's ``calls`` meter counts every successful event (e7 too), so a user's ``events``
(the events any meter counted) include e7.

* ann (events e1 e2 e3 e8 = 4; org-1): datasets 12345 (e1 e2: 2 events, 03-02 09:00 → 03-03
  10:00), 4242 (e8), 777 (e3) → 3; indicators 5 (e8), 897 (e1), 901 (e3), 962 (e1), 964 (e1
  e2: 2 events) → 5. Numeric values are listed by number: 777, 4242, 12345.
* bob (events e4 e5 e7 e9 = 4; org-1, his latest counted event with an org): datasets 12345 (e4), 55 (e5 e9: 2
  events, 03-06 08:00 → 03-08 00:00) → 2; indicators 897, 933 (e4), 964 (e5 e9: 2 events — e9
  lists 964 twice and is still one event) → 3.
* org-1 (the events carrying it: e1 e2 e3 e4 e8 e9; e5 has none): datasets 12345 (e1 e2 e4: 3
  events), 4242, 55 (e9 only: 1 event), 777 → 4; indicators 5, 897 (e1 e4), 901, 933, 962, 964
  (e1 e2 e9: 3 events, 03-02 09:00 → 03-08 00:00) → 6; users ann, bob.

Over ``--from 2026-03-01 --to 2026-03-10`` e8 is out: ann has datasets 12345, 777 (2) and
indicators 897, 901, 962, 964 (4) in 3 events; org-1 datasets 12345, 55, 777 (3) and
indicators 897, 901, 933, 962, 964 (5).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SAMPLE_DATA, write

ROUTE = "/datasets/{dataset_id}?indicators={indicator_ids}"
GATEWAY = (
    "timestamp,X-User-ID,X-Organization-ID,endpoint,status_code\n"
    '2026-03-02T09:00:00Z,ann,org-1,"/datasets/12345?indicators=964,897,962",200\n'
    "2026-03-03T10:00:00Z,ann,org-1,/datasets/12345?indicators=964,200\n"
    "2026-03-04T11:00:00Z,ann,org-1,/datasets/777?indicators=901,200\n"
    '2026-03-05T12:00:00Z,bob,org-1,"/datasets/12345?indicators=897,933",200\n'
    "2026-03-06T08:00:00Z,bob,,/datasets/55?indicators=964,200\n"
    "2026-03-06T09:00:00Z,bob,org-1,/datasets/888?indicators=111,429\n"
    "2026-03-07T09:00:00Z,bob,org-1,/datasets/999,200\n"
    '2026-03-08T00:00:00Z,bob,org-1,"/datasets/55?indicators=964,964",200\n'
    "2026-03-10T00:00:00Z,ann,org-1,/datasets/4242?indicators=5,200\n"
)
LICENCE = """
[[contract]]
id = "lic"
owner = "lab"
start = 2026-01-01
cycle = "monthly"
timezone = "UTC"

  [[contract.meter]]
  name = "users"
  aggregate = "distinct"
  field = "user_id"
  endpoints = ["/datasets/{dataset_id}"]
  require = ["indicator_ids"]

  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  field = "dataset_id"
  endpoints = ["/datasets/{dataset_id}"]
  require = ["indicator_ids"]

  [[contract.meter]]
  name = "indicators"
  aggregate = "distinct"
  field = "indicator_ids"
  endpoints = ["/datasets/{dataset_id}"]
  require = ["indicator_ids"]

  [[contract.meter]]
  name = "calls"
  aggregate = "count"
"""
AS_OF = "2026-03-20T00:00:00Z"


def _item(value: str, events: int, first: str, last: str | None = None) -> dict:
    return {"value": value, "events": events, "first_seen": f"2026-03-{first}:00+00:00",
            "last_seen": f"2026-03-{last or first}:00+00:00"}


ANN_DATASETS = [_item("777", 1, "04T11:00"), _item("4242", 1, "10T00:00"),
                _item("12345", 2, "02T09:00", "03T10:00")]
ANN_INDICATORS = [_item("5", 1, "10T00:00"), _item("897", 1, "02T09:00"),
                  _item("901", 1, "04T11:00"), _item("962", 1, "02T09:00"),
                  _item("964", 2, "02T09:00", "03T10:00")]
BOB_DATASETS = [_item("55", 2, "06T08:00", "08T00:00"), _item("12345", 1, "05T12:00")]
BOB_INDICATORS = [_item("897", 1, "05T12:00"), _item("933", 1, "05T12:00"),
                  _item("964", 2, "06T08:00", "08T00:00")]
ORG_DATASETS = [_item("55", 1, "08T00:00"), _item("777", 1, "04T11:00"),
                _item("4242", 1, "10T00:00"), _item("12345", 3, "02T09:00", "05T12:00")]
ORG_INDICATORS = [_item("5", 1, "10T00:00"), _item("897", 2, "02T09:00", "05T12:00"),
                  _item("901", 1, "04T11:00"), _item("933", 1, "05T12:00"),
                  _item("962", 1, "02T09:00"), _item("964", 3, "02T09:00", "08T00:00")]


@pytest.fixture
def lic(cli, tmp_path: Path):  # noqa: ANN201
    """``cli`` on the gateway log above and the licence contract."""
    r = cli("ingest", write(tmp_path / "gw.csv", GATEWAY), "--owner", "lab", "--product",
            "DATASETS", "--route", ROUTE, "-q")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert cli("contracts", "load", write(tmp_path / "c.toml", LICENCE), "-q").exit_code == 0

    def report(*args: str, fmt: str = "json"):  # noqa: ANN202
        return cli("report", "-c", "lic", "--as-of", AS_OF, "--view", "users", "--format", fmt,
                   *args)

    return report


def test_detail_lists_each_users_datasets_and_indicators(lic) -> None:
    r = lic("--detail")
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = r.json()
    assert doc["detail_meters"] == [
        {"meter": "datasets", "field": "dataset_id", "unit": "datasets"},
        {"meter": "indicators", "field": "indicator_ids", "unit": "indicators"}]
    ann, bob = doc["users"]
    assert (ann["user_id"], ann["org_id"], ann["events"]) == ("ann", "org-1", 4)
    assert ann["meters"] == {"users": 1, "datasets": 3, "indicators": 5, "calls": 4}
    assert ann["detail"] == {"datasets": ANN_DATASETS, "indicators": ANN_INDICATORS}
    assert (bob["user_id"], bob["org_id"], bob["events"]) == ("bob", "org-1", 4)
    assert bob["meters"] == {"users": 1, "datasets": 2, "indicators": 3, "calls": 4}
    assert bob["detail"] == {"datasets": BOB_DATASETS, "indicators": BOB_INDICATORS}
    assert doc["orgs"] == [{"org_id": "org-1", "users": ["ann", "bob"],
                            "meters": {"datasets": 4, "indicators": 6},
                            "detail": {"datasets": ORG_DATASETS, "indicators": ORG_INDICATORS}}]
    assert (doc["total_count"], doc["limit"], doc["offset"], doc["has_more"]) == (2, None, 0, False)
    # The users view's own figures, without --detail, are the counts of these lists.
    plain = lic().json()
    assert [u["meters"] for u in plain["users"]] == [ann["meters"], bob["meters"]]
    assert "total_count" not in plain  # the plain users view is as it was


def test_detail_over_a_range_leaves_out_the_event_at_its_end(lic) -> None:
    doc = lic("--detail", "--from", "2026-03-01", "--to", "2026-03-10").json()
    assert doc["range"] == {"from": "2026-03-01T00:00:00+00:00", "to": "2026-03-10T00:00:00+00:00"}
    ann = doc["users"][0]
    assert ann["events"] == 3 and ann["meters"]["datasets"] == 2 and ann["meters"]["indicators"] == 4
    assert [i["value"] for i in ann["detail"]["datasets"]] == ["777", "12345"]
    assert [i["value"] for i in ann["detail"]["indicators"]] == ["897", "901", "962", "964"]
    assert doc["users"][1]["detail"] == {"datasets": BOB_DATASETS, "indicators": BOB_INDICATORS}
    org = doc["orgs"][0]
    assert org["meters"] == {"datasets": 3, "indicators": 5}
    assert [i["value"] for i in org["detail"]["datasets"]] == ["55", "777", "12345"]
    # The boundary instant itself is in a range that starts there.
    late = lic("--detail", "--from", "2026-03-10T00:00:00Z", "--to", "2026-03-11").json()
    assert [(u["user_id"], u["detail"]["datasets"]) for u in late["users"]] == [
        ("ann", [_item("4242", 1, "10T00:00")])]


def test_detail_pages_users_and_follows_user(lic) -> None:
    page = lic("--detail", "--limit", "1", "--offset", "1").json()
    assert [u["user_id"] for u in page["users"]] == ["bob"]
    assert (page["total_count"], page["limit"], page["offset"], page["has_more"]) == (2, 1, 1, False)
    assert page["users"][0]["detail"]["indicators"] == BOB_INDICATORS
    assert page["orgs"][0]["meters"] == {"datasets": 4, "indicators": 6}  # orgs are not paged
    first = lic("--detail", "--limit", "1").json()
    assert [u["user_id"] for u in first["users"]] == ["ann"] and first["has_more"] is True
    # The plain users view pages too, and then says so.
    plain = lic("--limit", "1").json()
    assert [u["user_id"] for u in plain["users"]] == ["ann"] and plain["total_count"] == 2
    one = lic("--detail", "--user", "ann").json()
    assert one["user"] == "ann" and [u["user_id"] for u in one["users"]] == ["ann"]
    assert one["users"][0]["detail"]["datasets"] == ANN_DATASETS
    # org-1 as ann's events show it (--user restricts every figure to that user's events).
    assert one["orgs"] == [{"org_id": "org-1", "users": ["ann"],
                            "meters": {"datasets": 3, "indicators": 5},
                            "detail": {"datasets": ANN_DATASETS, "indicators": ANN_INDICATORS}}]


def test_detail_csv_is_one_row_per_user_and_item(lic) -> None:
    r = lic("--detail", fmt="csv")
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["contract_id", "period_index", "period_start", "period_end", "as_of",
                             "level", "user_id", "org_id", "meter", "field", "value", "events",
                             "first_seen", "last_seen"]
    users = [(x["user_id"], x["meter"], x["value"], x["events"]) for x in rows
             if x["level"] == "user"]
    # 3 + 5 items of ann, 2 + 3 of bob, then org-1's 4 + 6.
    assert len(users) == 13 and len(rows) == 23
    assert users[:3] == [("ann", "datasets", "777", "1"), ("ann", "datasets", "4242", "1"),
                         ("ann", "datasets", "12345", "2")]
    assert users[-1] == ("bob", "indicators", "964", "2")
    orgs = [x for x in rows if x["level"] == "org"]
    assert {x["org_id"] for x in orgs} == {"org-1"} and {x["user_id"] for x in orgs} == {""}
    assert [(x["meter"], x["value"], x["events"]) for x in orgs][-1] == ("indicators", "964", "3")
    assert rows[0]["first_seen"] == "2026-03-04T11:00:00+00:00"


def test_detail_csv_keeps_a_user_without_any_item(cli, tmp_path: Path) -> None:
    """A user counted by another meter but with no dataset still has a row (meter empty)."""
    cli("ingest", write(tmp_path / "gw.csv", GATEWAY), "--owner", "lab", "--product", "DATASETS",
        "--route", ROUTE, "-q")
    cli("ingest", write(tmp_path / "x.csv", "timestamp,user_id,endpoint\n"
                        "2026-03-03T00:00:00Z,cy,/other\n"), "--owner", "lab", "-q")
    cli("contracts", "load", write(tmp_path / "c.toml", LICENCE), "-q")
    r = cli("report", "-c", "lic", "--as-of", AS_OF, "--view", "users", "--detail",
            "--format", "csv")
    rows = [x for x in csv.DictReader(io.StringIO(r.stdout)) if x["user_id"] == "cy"]
    assert [(x["level"], x["meter"], x["value"], x["events"]) for x in rows] == [("user", "", "", "")]
    doc = cli("report", "-c", "lic", "--as-of", AS_OF, "--view", "users", "--detail",
              "--format", "json").json()
    cy = doc["users"][2]
    assert cy["meters"] == {"users": 0, "datasets": 0, "indicators": 0, "calls": 1}
    assert cy["detail"] == {"datasets": [], "indicators": []}


def test_detail_table_names_each_users_values(lic) -> None:
    r = lic("--detail", fmt="table")
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert "3: 777, 4242, 12345" in out and "5: 5, 897, 901, 962, 964" in out
    assert "2: 55, 12345" in out and "3: 897, 933, 964" in out
    assert "org-1" in out and "4: 55, 777, 4242, 12345" in out


@pytest.mark.parametrize(("args", "option", "valid_key", "valid"), [
    (("--view", "top", "--detail"), "--detail", "views", ["users"]),
    (("--view", "users", "--detail", "--meter", "users", "--meter", "calls"), "--meter",
     "valid", ["datasets", "indicators"]),
    (("--view", "users", "--detail", "--engine", "spark"), "--engine", "valid", ["local"]),
])
def test_detail_is_refused_where_it_does_not_apply(lic, cli, args, option, valid_key,
                                                   valid) -> None:
    r = cli("report", "-c", "lic", "--as-of", AS_OF, "--format", "json", *args)
    assert r.exit_code == 2, r.stdout + r.stderr
    err = json.loads(r.stdout or r.stderr)["error"]
    assert err["details"]["option"] == option and err["details"][valid_key] == valid, err


def test_detail_on_a_contract_without_a_listable_meter_names_the_meters(sample) -> None:
    r = sample("report", "-c", "terra-pro-monthly", "--view", "users", "--detail",
               "--as-of", "2026-11-20T12:00:00Z", "--format", "json")
    assert r.exit_code == 2
    err = json.loads(r.stdout or r.stderr)["error"]
    assert err["details"]["valid"] == [] and "distinct" in err["message"]


# -- the property: a list is as long as the users view's distinct count ------------------------

EVENT = st.tuples(st.integers(0, 20 * 24 - 1), st.sampled_from(["u1", "u2", "u3"]),
                  st.sampled_from(["", "o1", "o2"]), st.sampled_from(["1", "2", "10", "01", "x y"]),
                  st.lists(st.sampled_from(["7", "8", "70", "9"]), max_size=3),
                  st.sampled_from([200, 200, 429]))


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(EVENT, min_size=1, max_size=20), cut=st.integers(1, 19))
def test_each_list_is_as_long_as_the_users_views_count(tmp_path_factory, events, cut) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from usagectl.cli import app
    from usagectl.reports.users_detail import value_order

    tmp = tmp_path_factory.mktemp("p")
    db = tmp / "p.duckdb"

    def run(*args: str) -> str:
        r = CliRunner().invoke(app, ["--db", str(db), *map(str, args)], catch_exceptions=False)
        assert r.exit_code == 0, r.stdout
        return r.stdout

    lines = ["event_id,timestamp,user_id,org_id,endpoint,status_code,dataset_id,indicator_ids"]
    for i, (h, user, org, ds, inds, status) in enumerate(events):
        lines.append(f"p{i},2026-03-{1 + h // 24:02d}T{h % 24:02d}:00:00Z,{user},{org},"
                     f"/datasets/{{dataset_id}},{status},{ds},\"{','.join(inds)}\"")
    run("ingest", write(tmp / "p.csv", "\n".join(lines) + "\n"), "--owner", "lab", "-q")
    run("contracts", "load", write(tmp / "c.toml", LICENCE), "-q")
    for rng in ((), ("--from", "2026-03-01", "--to", f"2026-03-{1 + cut:02d}")):
        base = ("report", "-c", "lic", "--as-of", AS_OF, "--view", "users", "--format", "json",
                *rng)
        plain = {u["user_id"]: u["meters"] for u in json.loads(run(*base))["users"]}
        detail = json.loads(run(*base, "--detail"))
        assert [u["user_id"] for u in detail["users"]] == sorted(plain)
        for u in detail["users"]:
            assert u["meters"] == plain[u["user_id"]]
            for meter in ("datasets", "indicators"):
                values = [i["value"] for i in u["detail"][meter]]
                assert len(values) == plain[u["user_id"]][meter], (u["user_id"], meter)
                assert values == sorted(set(values), key=value_order)
        for org in detail["orgs"]:
            for meter in ("datasets", "indicators"):
                assert len(org["detail"][meter]) == org["meters"][meter]


# -- export --views: every view of the registry, and overlap -----------------------------------

SAMPLE_AS_OF = "2026-11-20T12:00:00Z"


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> Path:  # noqa: ANN001
    """The bundled sample in one database for this module's export tests (read only)."""
    from typer.testing import CliRunner

    from usagectl.cli import app

    db = tmp_path_factory.mktemp("sample") / "s.duckdb"
    runner = CliRunner()
    for f in sorted(SAMPLE_DATA.iterdir()):
        if f.suffix in (".csv", ".geojson", ".jsonl", ".parquet"):
            owner = ["--owner", "lca-institute"] if f.name == "licence_calls.csv" else []
            r = runner.invoke(app, ["--db", str(db), "ingest", str(f), *owner, "-q"])
            assert r.exit_code == 0, f
    r = runner.invoke(app, ["--db", str(db), "contracts", "load",
                            str(SAMPLE_DATA / "contracts.toml"), "-q"])
    assert r.exit_code == 0
    return db


def _exportable() -> list[str]:
    from usagectl.reports import EXPORTABLE_VIEWS

    return list(EXPORTABLE_VIEWS)


@pytest.mark.parametrize("view", _exportable())
def test_an_exported_view_is_the_reports_own_csv(cli, sample_db: Path, tmp_path: Path,
                                                 view: str) -> None:
    # The tokens view lists token events: the sample's are terra's (acme has none).
    contract = "terra-pro-monthly" if view == "tokens" else "acme-farms-2026"
    out = tmp_path / "out"
    r = cli("export", "-c", contract, "--out-dir", out, "--views", view, "--as-of",
            SAMPLE_AS_OF, "--format", "json", db=sample_db)
    assert r.exit_code == 0, r.stdout + r.stderr
    (entry,) = r.json()["files"]
    assert entry["name"] == f"{contract}.{view}.csv" and entry["view"] == view
    data = (out / entry["name"]).read_text(encoding="utf-8")
    assert len(list(csv.DictReader(io.StringIO(data)))) == entry["rows"] > 0
    command = ("overlap",) if view == "overlap" else ("report", "--view", view)
    own = cli(*command, "-c", contract, "--as-of", SAMPLE_AS_OF, "--format", "csv",
              db=sample_db)
    assert own.exit_code == 0, own.stderr
    assert data == own.stdout


def test_overlap_is_exportable_and_skipped_without_an_area_meter(cli, sample_db: Path,
                                                                 tmp_path: Path) -> None:
    from usagectl.reports import EXPORTABLE_VIEWS, VIEWS

    assert EXPORTABLE_VIEWS == (*VIEWS, "overlap")
    out = tmp_path / "out"
    r = cli("export", "--all", "--out-dir", out, "--views", "overlap", "--as-of", SAMPLE_AS_OF,
            "--format", "json", db=sample_db)
    assert r.exit_code == 0, r.stdout + r.stderr
    manifest = r.json()
    assert [f["name"] for f in manifest["files"]] == ["acme-farms-2026.overlap.csv"]
    assert manifest["failures"] == []
    assert sorted(s["contract"] for s in manifest["skipped"]) == [
        "docuscan-team-monthly", "lca-licence-2026", "terra-pro-monthly"]
    assert {s["view"] for s in manifest["skipped"]} == {"overlap"}
    assert "unique_area" in manifest["skipped"][0]["reason"]
    assert sorted(p.name for p in out.iterdir()) == ["acme-farms-2026.overlap.csv", "manifest.json"]
    # The overlap file is the overlap command's CSV: user_id, area, exclusive_area, shared_area.
    rows = list(csv.DictReader((out / "acme-farms-2026.overlap.csv").open()))
    assert list(rows[0]) == ["user_id", "area", "exclusive_area", "shared_area"]
    table = cli("export", "--all", "--out-dir", out, "--views", "overlap", "--as-of",
                SAMPLE_AS_OF, db=sample_db)
    assert table.exit_code == 0 and "skipped" in table.stderr


def test_new_views_file_names_stay_inside_the_folder(cli, db_path: Path, tmp_path: Path) -> None:
    """Contract ids an older database holds make file names for every view inside the folder."""
    from tests.test_cli_export import _store_contract_as

    evil = ["../../escaped", "/abs/escaped", "a/b", ".hidden"]
    _store_contract_as(db_path, tmp_path, cli, evil)
    out = tmp_path / "deep" / "exp"
    r = cli("export", "--all", "--out-dir", out, "--as-of", "2026-03-10", "--views",
            "series,top,requests,overlap", "--format", "json")
    assert r.exit_code == 0, r.stdout
    names = [f["name"] for f in r.json()["files"]]
    assert len(names) == len(set(names)) == 3 * (len(evil) + 1)
    for name in names:
        assert (out / name).resolve().parent == out.resolve()
    assert len(r.json()["skipped"]) == len(evil) + 1  # no area meter: no overlap file
    assert [p for p in tmp_path.rglob("*escaped*") if p.parent != out] == []


# -- the docs' examples are among those the suite runs ----------------------------------------

def test_the_docs_examples_are_the_readmes() -> None:
    from tests.conftest import REPO
    from tests.test_docs import _examples

    readme = {c for c, _ in _examples((REPO / "README.md").read_text(encoding="utf-8"))}
    for page, needle in (("requests.md", "--detail"), ("cli.md", "export")):
        commands = [c for c, _ in _examples((REPO / "docs" / page).read_text(encoding="utf-8"))
                    if needle in c]
        assert commands, page
        assert set(commands) <= readme, page
