"""Options: bad values exit 2 listing the valid ones, JSON errors in JSON mode, options that do not
apply are refused, --quiet is silent, and --help says what each command accepts (SPEC §6;
docs/cli.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REQUESTS_AND_CREDITS, write
from usagectl.errors import ExitCode

CONTRACT = REQUESTS_AND_CREDITS

EVENTS = "event_id,ts,owner_id,user_id,product,endpoint,credits\n" + "".join(
    f"e{i},2026-03-{1 + i:02d}T10:00:00Z,o,u{i % 3},chat,/ep{i % 2},1.5\n" for i in range(9))

AS_OF = "2026-03-20"


@pytest.fixture
def db(cli, tmp_path: Path):  # noqa: ANN201
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0
    assert cli("ingest", write(tmp_path / "e.csv", EVENTS)).exit_code == 0
    return cli


AMOUNT_FORM = ["a number", "29 digits", "9 after"]
TOLERANCE_FORMS = ["0.1%", "non-negative number"]

BAD_VALUES = [
    (["report", "-c", "c", "--view", "bogus"], ["consolidated", "users", "daily", "log", "series", "top"]),
    (["report", "-c", "c", "--view", "series", "--bucket", "week"], ["hour", "day", "month"]),
    (["report", "-c", "c", "--view", "top", "--group-by", "product"],
     ["endpoint", "operation", "resource_id", "session_id", "user_id", "org_id"]),
    (["report", "-c", "c", "--as-of", "garbage"], ["2026-03-01", "now"]),
    (["report", "-c", "c", "--as-ingested-at", "garbage"], ["2026-03-01", "now"]),
    (["check", "-c", "c", "--meter", "requests", "--amount", "abc"], ["a number"]),
    (["check", "-c", "c", "--meter", "requests", "--amount", "-3"], ["a number"]),
    (["report", "-c", "c", "--view", "top", "--limit", "-1"], [">= 0"]),
    (["report", "-c", "c", "--view", "log", "--offset", "-1"], [">= 0"]),
    (["report", "-c", "c", "--view", "log", "--offset", str(10**20)], ["<= "]),
    # --amount: plain decimals with at most 29 integer digits and 9 decimals, as credits.
    (["check", "-c", "c", "--meter", "requests", "--amount", "1e1000000"], AMOUNT_FORM),
    (["check", "-c", "c", "--meter", "requests", "--amount", "1e400"], AMOUNT_FORM),
    (["check", "-c", "c", "--meter", "requests", "--amount", "1" * 30], AMOUNT_FORM),
    (["check", "-c", "c", "--meter", "requests", "--amount", "0.0000000001"], AMOUNT_FORM),
    (["check", "-c", "c", "--meter", "requests", "--amount", "NaN"], AMOUNT_FORM),
    # --tolerance is checked before the statement is read (the file here does not exist).
    (["reconcile", "-c", "c", "--against", "missing.csv", "--tolerance", "abc"], TOLERANCE_FORMS),
    (["reconcile", "-c", "c", "--against", "missing.csv", "--tolerance", "-1"], TOLERANCE_FORMS),
    (["reconcile", "-c", "c", "--against", "missing.csv", "--tolerance", "-1%"], TOLERANCE_FORMS),
    (["reconcile", "-c", "c", "--against", "missing.csv", "--tolerance", "nan"], TOLERANCE_FORMS),
    (["reconcile", "-c", "c", "--against", "missing.csv", "--tolerance", "1e999999"], TOLERANCE_FORMS),
]


@pytest.mark.parametrize(("args", "valid"), BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_option_values_exit_2_listing_the_valid_values(db, args: list[str], valid: list[str]) -> None:
    if "--as-of" not in args:
        args = [*args, "--as-of", AS_OF]
    r = db(*args)
    assert r.exit_code == ExitCode.USAGE, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.startswith("usagectl: error: ")
    for word in valid:
        assert word in r.stderr, (word, r.stderr)
    j = db(*args, "--format", "json")
    assert j.exit_code == ExitCode.USAGE
    err = j.json()["error"]
    assert err["code"] == "validation_error" and set(err) == {"code", "message", "details"}
    for word in valid:
        assert word in err["message"]


@pytest.mark.parametrize("args", [
    ["report", "-c", "c", "--view", "log", "--limit", "abc"],
    ["report", "-c", "c", "--offset", "1e20"],
    ["report", "--view", "users"],                      # --contract missing
    ["report", "-c", "c", "--no-such-option"],
    ["check", "-c", "c", "--meter", "requests"],       # --amount missing
    ["no-such-command"],
])
def test_parse_errors_in_json_mode_are_the_json_error_object(db, args: list[str]) -> None:
    for where in ("after", "before"):
        argv = [*args, "--format", "json"] if where == "after" else ["--format", "json", *args]
        if args == ["no-such-command"] and where == "after":
            continue  # an unknown command never reads the options after it
        r = db(*argv)
        assert r.exit_code == ExitCode.USAGE, (argv, r.stdout, r.stderr)
        err = r.json()["error"]
        assert err["code"] == "validation_error" and err["message"], argv
        assert "Traceback" not in r.stderr
    plain = db(*args)
    assert plain.exit_code == ExitCode.USAGE and plain.stdout == ""


def test_the_largest_amount_is_exact_everywhere(db) -> None:
    """29 integer digits and 9 decimals (credits' own range): no rounding, no exponent."""
    amount = "99999999999999999999999999999.999999999"
    r = db("check", "-c", "c", "--meter", "credits", "--amount", amount, "--as-of", AS_OF,
           "--format", "json")
    assert r.exit_code == 3, r.stdout
    assert f'"required": {amount},' in r.stdout and amount in r.json()["message"]
    t = db("check", "-c", "c", "--meter", "credits", "--amount", amount, "--as-of", AS_OF)
    assert t.exit_code == 3 and amount in " ".join(t.stdout.split()), t.stdout


def test_json_error_details_never_hold_a_number_in_exponent_form(db) -> None:
    huge = "99999999999999999999999"
    r = db("report", "-c", "c", "--period", huge, "--as-of", AS_OF, "--format", "json")
    assert r.exit_code == 1, r.stdout
    assert r.json()["error"]["details"]["index"] == huge  # as given: a string, exactly
    assert "e+" not in r.stdout.lower()


def test_a_group_without_a_command_is_a_usage_error(db) -> None:
    r = db("-f", "json", "contracts")
    assert r.exit_code == 2, r.stdout
    err = r.json()["error"]  # only the JSON object on stdout, no help text before it
    assert err["code"] == "validation_error"
    for name in ("load", "list", "show"):
        assert name in err["message"]
    assert err["details"]["valid"] == ["load", "list", "show"]
    plain = db("contracts")
    assert plain.exit_code == 2 and "load" in plain.stdout + plain.stderr


def test_limit_and_offset_page_the_top_view(db) -> None:
    base = ("report", "-c", "c", "--view", "top", "--group-by", "user_id", "--meter", "requests",
            "--as-of", AS_OF, "--format", "json")
    whole = db(*base).json()
    assert [r["key"] for r in whole["rows"]] == ["u0", "u1", "u2"]
    page = db(*base, "--limit", "1", "--offset", "1").json()
    assert [r["key"] for r in page["rows"]] == ["u1"]
    assert (page["total_count"], page["limit"], page["offset"], page["has_more"]) == (3, 1, 1, True)
    assert db(*base, "--offset", "5").json()["rows"] == []
    assert db(*base, "--limit", "0").json()["rows"] == []


def test_from_to_filter_the_log(db) -> None:
    base = ("report", "-c", "c", "--view", "log", "--as-of", AS_OF, "--format", "json")
    # Half-open [from, to): --to 2026-03-06 ends at the start of 03-06, so 03-05 is listed.
    doc = db(*base, "--from", "2026-03-03", "--to", "2026-03-06").json()
    assert [e["event_id"] for e in doc["events"]] == ["e2", "e3", "e4"]
    assert doc["total_count"] == 3 and doc["has_more"] is False
    # First sightings are the period's: u2 was first seen on 2026-03-03, u0 and u1 before.
    assert [e["new_user"] for e in doc["events"]] == [True, False, False]
    assert db(*base, "--from", "2026-03-08").json()["total_count"] == 2
    bad = db(*base, "--from", "2026-03-05", "--to", "2026-03-03")
    assert bad.exit_code == 2 and "after" in bad.json()["error"]["message"]


@pytest.mark.parametrize(("view", "option", "applies"), [
    ("daily", ["--group-by", "endpoint"], "top"),
    ("users", ["--group-by", "endpoint"], "top"),  # series takes product|operation (issue 13)
    ("consolidated", ["--bucket", "hour"], "series"),
    ("users", ["--window", "day"], "consolidated"),
    ("series", ["--window", "week"], "consolidated"),
    ("daily", ["--limit", "3"], "log, top"),
    ("consolidated", ["--offset", "3"], "log, top"),
])
def test_an_option_that_does_not_apply_is_refused(db, view: str, option: list[str], applies: str) -> None:
    r = db("report", "-c", "c", "--view", view, *option, "--as-of", AS_OF, "--format", "json")
    assert r.exit_code == 2, r.stdout
    message = r.json()["error"]["message"]
    assert option[0] in message and applies in message and view in message


def test_html_refuses_view_options_and_table_refuses_out(db, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = db("report", "-c", "c", "--view", "users", "--format", "html", "--out", out, "--as-of", AS_OF)
    assert r.exit_code == 2 and "--view" in r.stderr and "html" in r.stderr and not out.exists()
    r = db("report", "-c", "c", "--format", "html", "--out", out, "--limit", "3", "--as-of", AS_OF)
    assert r.exit_code == 2 and "--limit" in r.stderr
    r = db("report", "-c", "c", "--out", tmp_path / "t.txt", "--as-of", AS_OF)
    assert r.exit_code == 2 and "--out" in r.stderr and "json" in r.stderr
    ok = db("report", "-c", "c", "--format", "html", "--out", out, "--as-of", AS_OF)
    assert ok.exit_code == 0 and out.exists()


# -- --quiet ---------------------------------------------------------------------------------


def test_quiet_prints_nothing_on_success(db, tmp_path: Path) -> None:
    statement = write(tmp_path / "s.csv", "user_id,value\nu0,3\nu1,3\nu2,3\n")
    commands = [
        ["contracts", "load", tmp_path / "c.toml"],
        ["contracts", "list"],
        ["contracts", "show", "c"],
        ["report", "-c", "c", "--as-of", AS_OF],
        ["report", "-c", "c", "--view", "log", "--limit", "2", "--as-of", AS_OF],
        ["report", "-c", "c", "--format", "html", "--out", tmp_path / "r.html", "--as-of", AS_OF],
        ["report", "-c", "c", "--format", "json", "--out", tmp_path / "r.json", "--as-of", AS_OF],
        ["usage", "--owner", "o", "--as-of", AS_OF],
        ["check", "-c", "c", "--meter", "requests", "--amount", "1", "--as-of", AS_OF],
        ["alerts", "--as-of", AS_OF],
        ["reconcile", "-c", "c", "--meter", "requests", "--against", statement, "--as-of", AS_OF],
        ["export", "--all", "--out-dir", tmp_path / "exp", "--as-of", AS_OF],
        ["ingests"],
        ["rejects"],
    ]
    for args in commands:
        r = db(*args, "--quiet")
        assert r.exit_code == 0, (args, r.stderr)
        assert (r.stdout, r.stderr) == ("", ""), args
    # Data asked for with --format json or csv is still written.
    r = db("report", "-c", "c", "--as-of", AS_OF, "--format", "json", "-q")
    assert r.exit_code == 0 and r.json()["meters"] and r.stderr == ""
    r = db("usage", "--owner", "o", "--as-of", AS_OF, "--format", "csv", "-q")
    assert r.stdout.startswith("contract,") and r.stderr == ""


def test_quiet_still_shows_what_went_wrong(db, tmp_path: Path) -> None:
    r = db("check", "-c", "c", "--meter", "requests", "--amount", "1000", "--as-of", AS_OF, "-q")
    assert r.exit_code == 3 and "cannot proceed" in r.stdout
    # reconcile -q with differences shows them, as check and alerts show their answer.
    statement = write(tmp_path / "s.csv", "user_id,value\nu0,3\nu1,4\nu2,3\n")
    r = db("reconcile", "-c", "c", "--meter", "requests", "--against", statement, "--as-of", AS_OF, "-q")
    assert r.exit_code == 3 and "u1" in r.stdout and r.stderr == "", (r.stdout, r.stderr)
    r = db("report", "-c", "nope", "-q")
    assert r.exit_code == 1 and "no contract" in r.stderr


# -- --help ----------------------------------------------------------------------------------


def test_format_help_lists_html_only_where_it_is_available(cli) -> None:
    def format_help(*command: str) -> str:
        text = cli(*command, "--help").stdout
        line = next(x for x in text.splitlines() if "--format" in x)
        return line

    assert "html" in format_help("report")
    for command in (("usage",), ("overlap",), ("alerts",), ("ingests",)):
        assert "html" not in format_help(*command), command
    assert "csv" not in format_help("check") and "json" in format_help("check")


def test_exit_codes_in_help_come_from_the_enum(cli) -> None:
    text = " ".join(cli("--help").stdout.split())
    for code in ExitCode:
        assert f"{int(code)} {code.meaning}" in text, code
