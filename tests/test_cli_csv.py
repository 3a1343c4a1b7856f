"""CSV that spreadsheets and programs can trust (SPEC §7; docs/cli.md "CSV").

* One writer for every CSV: a field holding a CR or LF is quoted, and every line of a text cell
  that starts with = + - @ tab (or a cell starting with CR) gets the OWASP ``'`` prefix. Checked
  by opening the files in LibreOffice (headless): no cell may become a formula.
* Numbers read as JSON does (no exponent, no trailing zeros, projections with 6 decimals), lists
  in cells are JSON with numbers as numbers, and headers never depend on the data.
* Tables show counts as integers.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import REPO, REQUESTS_AND_CREDITS, write
from usagectl.renderers import csvout

HOSTILE = ["=2+3", "x\r=2+3", "a\n+1", "@SUM(A1)", "-2+3", "\t=1+1", "\r=1+1", "ok\r\n-1+1"]
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")

CONTRACT = REQUESTS_AND_CREDITS


def _events(path: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    """A CSV input file, every field quoted (so CR and LF inside values survive)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)
        w.writerow(["event_id", "ts", "owner_id", "user_id", "product", "status", "error_code",
                    "credits"])
        for event_id, ts, user, status, code in rows:
            w.writerow([event_id, ts, "o", user, "chat", status, code, "1.25"])
    return path


@pytest.fixture
def hostile(cli, tmp_path: Path):  # noqa: ANN201
    cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT))
    rows = [(f"e{i}", "2026-03-02T10:00:00Z", f"u{i}", "200", "") for i in range(len(HOSTILE))]
    r = cli("ingest", _events(tmp_path / "h.csv", rows), "--format", "json")
    assert r.json()["totals"]["accepted"] == len(HOSTILE), r.stdout
    # Ingest rejects control characters in ids (docs/ingest.md), but a database written by an
    # older usagectl may hold them, and every CSV must stay safe whatever the data: put the
    # hostile values in place directly.
    import duckdb

    con = duckdb.connect(str(tmp_path / "usage.duckdb"))
    for i, v in enumerate(HOSTILE):
        con.execute("UPDATE events SET user_id = ? WHERE event_id = ?", [v, f"e{i}"])
    con.close()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'event_id,ts,owner_id,user_id,product\n'
                    b'b1,"=2+3\rnot-a-time",o,u,chat\n'
                    b'b2,"-1+1",o,"\t=1+1",chat\n')
    assert cli("ingest", bad, "--format", "json").json()["totals"]["rejected"] == 2
    return cli


# -- the writer ------------------------------------------------------------------------------


def test_every_csv_goes_through_one_writer() -> None:
    """No module but renderers/csvout.py writes CSV (the sample generator writes input data;
    store/events_dataset.py uses COPY for Parquet only)."""
    offenders = []
    for path in (REPO / "usagectl").rglob("*.py"):
        rel = path.relative_to(REPO).as_posix()
        if rel in ("usagectl/renderers/csvout.py", "usagectl/sample/generator.py"):
            continue
        text = path.read_text(encoding="utf-8")
        if rel == "usagectl/store/events_dataset.py":
            copies = re.findall(r"\(FORMAT (\w+)", text)
            assert copies and set(copies) == {"parquet"}, copies
            text = text.replace("COPY", "")
        if re.search(r"\bcsv\.(writer|DictWriter)\(|[\"']COPY\b", text):
            offenders.append(rel)
    assert offenders == []


def test_cr_and_lf_are_quoted_and_every_line_is_neutralised() -> None:
    rows = [{"v": v, "n": n} for v, n in zip(HOSTILE + ["plain", "a,b", 'say "hi"'],
                                               [-2, Decimal("-0.5"), 3.25, 0, 1, 2, 3, 4, 5, 6, 7])]
    text = csvout.render(rows, ["v", "n"])
    assert text == (
        "v,n\n"
        "'=2+3,-2\n"
        "\"x\r'=2+3\",-0.5\n"
        "\"a\n'+1\",3.25\n"
        "'@SUM(A1),0\n"
        "'-2+3,1\n"
        "'\t=1+1,2\n"
        "\"'\r'=1+1\",3\n"
        "\"ok\r\n'-1+1\",4\n"
        "plain,5\n"
        "\"a,b\",6\n"
        "\"say \"\"hi\"\"\",7\n")
    # A reader that honours quotes sees one record per row, the values intact after the prefix.
    back = list(csv.reader(io.StringIO(text, newline="")))
    assert len(back) == 12 and all(len(r) == 2 for r in back)


def _rows(fods: Path) -> tuple[list[list[tuple[str, str | None]]], int]:
    """(non-empty rows as [(text, value-type)], number of formula cells) of a flat ODS file."""
    ns = {"table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
          "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
          "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0"}
    root = ET.parse(fods).getroot()
    formulas = 0
    rows = []
    for row in root.iter(f"{{{ns['table']}}}table-row"):
        cells = []
        for c in row.iter(f"{{{ns['table']}}}table-cell"):
            if f"{{{ns['table']}}}formula" in c.attrib:
                formulas += 1
            text = "\n".join("".join(p.itertext()) for p in c.iter(f"{{{ns['text']}}}p"))
            cells.append((text, c.get(f"{{{ns['office']}}}value-type")))
        if any(t for t, _ in cells):
            rows.append(cells)
    return rows, formulas


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice is not installed (make test installs "
                                            "libreoffice-calc-nogui)")
def test_libreoffice_opens_every_csv_without_a_formula(hostile, tmp_path: Path) -> None:
    statement = tmp_path / "statement.csv"
    with open(statement, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)
        w.writerow(["user_id", "value"])
        # Statement keys are stripped of surrounding blanks: "\t=1+1" and "\r=1+1" stay ours only.
        w.writerows([v, "5"] for v in HOSTILE if v == v.strip())
    outputs = {
        "users": hostile("report", "-c", "c", "--view", "users", "--as-of", "2026-03-10",
                         "--format", "csv"),
        "log": hostile("report", "-c", "c", "--view", "log", "--as-of", "2026-03-10", "--format", "csv"),
        "top": hostile("report", "-c", "c", "--view", "top", "--as-of", "2026-03-10", "--format", "csv"),
        "reconcile": hostile("reconcile", "-c", "c", "--meter", "requests", "--against", statement,
                             "--as-of", "2026-03-10", "--format", "csv"),
        "rejects": hostile("rejects", "--format", "csv"),
        "unit": None,
    }
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, run in outputs.items():
        data = (run.stdout if run is not None else
                csvout.render([{"v": v, "n": -2} for v in HOSTILE], ["v", "n"]))
        (folder / f"{name}.csv").write_bytes(data.encode("utf-8"))
    profile = f"file:///tmp/usagectl-lo-{uuid.uuid4().hex}"  # private: parallel runs never collide
    try:
        r = subprocess.run([SOFFICE, f"-env:UserInstallation={profile}", "--headless",
                            "--infilter=CSV:44,34,76,1", "--convert-to", "fods", "--outdir",
                            str(tmp_path / "out"), *sorted(str(p) for p in folder.iterdir())],
                           capture_output=True, text=True, timeout=240)
    finally:
        shutil.rmtree(profile.removeprefix("file://"), ignore_errors=True)
    expected = {"users": 1 + len(HOSTILE), "log": 1 + len(HOSTILE), "top": 1 + len(HOSTILE),
                "reconcile": 1 + len(HOSTILE), "rejects": 3, "unit": 1 + len(HOSTILE)}
    for name, count in expected.items():
        fods = tmp_path / "out" / f"{name}.fods"
        assert fods.exists(), (name, r.stdout, r.stderr)
        rows, formulas = _rows(fods)
        assert formulas == 0, name
        assert len(rows) == count, (name, [[t for t, _ in row] for row in rows])
    # Negative numbers stay numbers; the hostile texts are there, as text.
    unit, _ = _rows(tmp_path / "out" / "unit.fods")
    assert all(row[1] == ("-2", "float") for row in unit[1:])
    assert {row[0][1] for row in unit[1:]} == {"string"}
    assert any("=2+3" in row[0][0] for row in unit[1:])
    rec, _ = _rows(tmp_path / "out" / "reconcile.fods")
    header = [t for t, _ in rec[0]]
    diff = header.index("difference")
    assert sorted(row[diff] for row in rec[1:]) == [("-4", "float")] * 6 + [("1", "float")] * 2


# -- numbers and headers ---------------------------------------------------------------------


AS_OF = "2026-11-20T12:00:00Z"


NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _same_number(text: str, value: object) -> bool:
    return bool(NUMBER.fullmatch(text)) and Decimal(text) == Decimal(str(value))


def test_csv_numbers_read_as_json_does(sample) -> None:
    args = ("report", "-c", "docuscan-team-monthly", "--as-of", AS_OF)
    doc = sample(*args, "--format", "json").json()
    text = sample(*args, "--format", "csv").stdout
    assert "E-" not in text and "E+" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    for m, row in zip(doc["meters"], rows):
        for key in ("owner_total", "user_total", "overlap", "billed", "remaining", "overage"):
            assert _same_number(row[key], m[key]), (key, row[key], m[key])
            assert not re.search(r"\.\d*0$", row[key]), (key, row[key])  # no trailing zeros
        for key in ("daily_average", "projected"):
            value = row[f"projection_{key}"]
            assert _same_number(value, m["projection"][key]), (key, value)
            assert len(value.partition(".")[2]) <= 6, value  # projections carry 6 decimals
        cell = json.loads(row["last_14_days"])
        assert cell == m["last_14_days"] and all(isinstance(v, (int, float)) for v in cell)
    credits = rows[0]
    assert credits["billed"] == "27.31" and credits["overlap"] == "0"
    raw = sample(*args, "--format", "json").stdout
    assert re.search(r'"projected": \d+\.\d{1,6},', raw)


def _loaded(cli, tmp_path: Path, order: int, db: Path | None = None) -> None:  # noqa: ANN001
    cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT), db=db)
    codes = [("429", "rate_limited")] * (1 + order * 2) + [("500", "internal_error")] * (3 - order)
    rows = [(f"ok{i}", f"2026-03-0{1 + i}T10:00:00Z", f"u{i}", "200", "") for i in range(3)]
    rows += [(f"f{i}", "2026-03-04T10:00:00Z", "u0", s, c) for i, (s, c) in enumerate(codes)]
    assert cli("ingest", _events(tmp_path / f"e{order}.csv", rows), db=db).exit_code == 0


VIEWS = ("consolidated", "users", "daily", "log", "series", "top")


@pytest.mark.parametrize("view", VIEWS)
def test_an_empty_view_has_the_same_header_as_a_full_one(cli, tmp_path: Path, view: str) -> None:
    _loaded(cli, tmp_path, 0)
    full = cli("report", "-c", "c", "--view", view, "--as-of", "2026-03-20", "--format", "csv")
    empty = cli("report", "-c", "c", "--view", view, "--as-of", "2026-05-20", "--format", "csv")
    assert full.exit_code == 0 and empty.exit_code == 0, full.stderr + empty.stderr
    assert len(full.stdout.splitlines()) > 1
    assert full.stdout.splitlines()[0] == empty.stdout.splitlines()[0]


def test_error_codes_are_one_json_cell_with_sorted_keys(cli, tmp_path_factory) -> None:
    headers, cells = [], []
    for order in (0, 1):  # rate_limited first by count, then internal_error first
        tmp = tmp_path_factory.mktemp(f"run{order}")
        _loaded(cli, tmp, order, db=tmp / "u.duckdb")
        r = cli("report", "-c", "c", "--as-of", "2026-03-20", "--format", "csv", db=tmp / "u.duckdb")
        assert r.exit_code == 0, r.stderr
        headers.append(r.stdout.splitlines()[0])
        row = next(csv.DictReader(io.StringIO(r.stdout)))
        cells.append(row["requests_failed_by_error_code"])
    assert headers[0] == headers[1]
    assert cells == ['{"internal_error": 3, "rate_limited": 1}',
                     '{"internal_error": 2, "rate_limited": 3}']


@pytest.mark.parametrize("view", VIEWS)
def test_csv_columns_are_the_json_keys(sample, view: str) -> None:
    """Every key of the JSON rows (nested objects joined with _) is a CSV column."""
    args = ("report", "-c", "docuscan-team-monthly", "--as-of", AS_OF, "--view", view)
    doc = sample(*args, "--format", "json").json()
    header = sample(*args, "--format", "csv").stdout.splitlines()[0].split(",")
    items = doc[csvout.VIEW_ITEMS[view]]
    assert items
    keys = set()
    for item in items:
        keys |= {k for k in csvout.flatten(item) if not k.startswith("requests_failed_by_error_code")}
    assert keys <= set(header), keys - set(header)


# -- tables ----------------------------------------------------------------------------------


def test_tables_show_counts_as_integers() -> None:
    from usagectl.renderers.console import Env
    from usagectl.renderers.report_tables import daily_table, series_table, users_table

    head = {"contract": {"id": "c", "owner": "o", "timezone": "UTC"},
            "period": {"index": 0, "start": "2026-03-01T00:00:00+00:00",
                       "end": "2026-04-01T00:00:00+00:00", "as_of": "2026-03-20T06:00:00-06:00"}}
    users = {**head, "users": [
        {"user_id": "a", "org_id": None, "meters": {"requests": 12, "credits": Decimal("1.500000000"),
                                                    "area": 1.5}, "events": 12},
        {"user_id": "b", "org_id": None, "meters": {"requests": 26, "credits": Decimal("2.000000000"),
                                                    "area": 2.0}, "events": 26}]}
    daily = {**head, "days": [
        {"date": "2026-03-01", "meters": {"requests": {"owner": 12, "user": 12}}},
        {"date": "2026-03-02", "meters": {"requests": {"owner": Decimal(26), "user": Decimal(26)}}}]}
    series = {**head, "bucket": "day", "series": [
        {"start": "2026-03-01T00:00:00+00:00", "meters": {"requests": 12}},
        {"start": "2026-03-02T00:00:00+00:00", "meters": {"requests": 26}}]}
    for render, doc in ((users_table, users), (daily_table, daily), (series_table, series)):
        out = io.StringIO()
        render(Env(stdout=out, stderr=io.StringIO()), doc)
        text = out.getvalue()
        assert not re.search(r"\b(12|26|38)\.00\b", text), text
        assert re.search(r"│\s+38 │", text), text  # the total of 12 + 26, as an integer
        if render is users_table:
            # Credits keep two decimals on every row (1.50, 2.00, 3.50); areas likewise.
            assert "1.50" in text and "2.00" in text and "3.50" in text
    # The header keeps the as-of's offset.
    assert "as of 2026-03-20T06:00:00-06:00" in text



def test_contracts_list_csv_has_one_header_with_or_without_contracts(cli, tmp_path: Path) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT))
    empty = cli("contracts", "list", "--owner", "nobody", "--format", "csv")
    full = cli("contracts", "list", "--format", "csv")
    assert empty.exit_code == full.exit_code == 0
    assert len(full.stdout.splitlines()) == 2
    assert empty.stdout.splitlines() == full.stdout.splitlines()[:1]
