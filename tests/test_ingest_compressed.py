"""Compressed and damaged inputs (SPEC §3.2, §3.3; issue 10 item 5): a compressed file that does
not end cleanly fails whole, a garbage file fails alone, and one bad JSON string rejects one row."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write

HEADER = "event_id,ts,owner_id,user_id,product,note\n"


def _csv(n: int, tag: str = "e") -> bytes:
    # Varied text so that zstd and gzip emit several blocks for the larger files.
    return (HEADER + "".join(f"{tag}{i},2026-01-01T10:00:00Z,acme,u{i % 7},P,{i * 7919 % 100003}"
                             f"-{'x' * (i % 13)}\n" for i in range(n))).encode()


def _zstd(data: bytes, **kw) -> bytes:  # noqa: ANN003
    import zstandard

    return zstandard.ZstdCompressor(**kw).compress(data)


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        con.close()


def _cuts(blob: bytes) -> list[int]:
    """Truncation points: inside the header, a quarter, half, three quarters, and the last bytes
    (a missing checksum or trailer)."""
    n = len(blob)
    return sorted({6, n // 4, n // 2, 3 * n // 4, n - 8, n - 4, n - 1})


@pytest.mark.parametrize("kind", ["zst", "gz"])
def test_a_truncated_compressed_file_fails_whole(cli, tmp_path: Path, db_path: Path,
                                                  kind: str) -> None:
    data = _csv(20_000)
    blob = _zstd(data, write_checksum=True) if kind == "zst" else gzip.compress(data)
    assert len(blob) > 100_000  # several blocks: the cuts fall inside the frame's data
    for cut in _cuts(blob):
        f = tmp_path / f"cut{cut}.csv.{kind}"
        f.write_bytes(blob[:cut])
        r = cli("ingest", f, "--format", "json")
        assert r.exit_code == 1, (cut, r.stdout)
        (out,) = r.json()["files"]
        assert out["status"] == "failed" and out["accepted"] == 0, (cut, out)
        assert "truncated" in out["error"] or "not a valid" in out["error"], (cut, out["error"])
        assert _count(db_path) == 0
    whole = tmp_path / f"whole.csv.{kind}"
    whole.write_bytes(blob)
    (out,) = cli("ingest", whole, "--format", "json").json()["files"]
    assert (out["status"], out["accepted"]) == ("ok", 20_000)


EMPTY_COMPRESSED = ("empty: a compressed file holds at least a header; the file is truncated "
                    "or was never written")


@pytest.mark.parametrize("name", ["a.jsonl.gz", "a.jsonl.zst", "a.csv.gz", "a.csv.zst",
                                  "a.geojson.gz", "a.json.zst", "a.ndjson.gzip"])
def test_a_zero_byte_compressed_file_is_a_failed_file(cli, tmp_path: Path, db_path: Path,
                                                      name: str) -> None:
    """gzip and zstd alike: even an empty payload compresses to a header (20 bytes for gzip, 9
    for zstd), so zero bytes is a copy that never arrived, not a file without events."""
    f = tmp_path / name
    f.write_bytes(b"")
    r = cli("ingest", f, "--format", "json")
    assert r.exit_code == 1, r.stdout
    (out,) = r.json()["files"]
    assert out["status"] == "failed" and EMPTY_COMPRESSED in out["error"], out
    (listed,) = cli("ingests", "--format", "json").json()
    assert listed["status"] == "failed" and EMPTY_COMPRESSED in listed["error"]


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_a_compressed_empty_file_has_no_events_and_is_ok(cli, tmp_path: Path, kind: str) -> None:
    """An empty JSON Lines payload, properly compressed, is a file without events: ok, 0 rows."""
    f = tmp_path / f"a.jsonl.{kind}"
    f.write_bytes(gzip.compress(b"") if kind == "gz" else _zstd(b""))
    (out,) = cli("ingest", f, "--format", "json").json()["files"]
    assert (out["status"], out["rows_read"]) == ("ok", 0), out


def test_truncated_zst_fails_for_json_lines_too(cli, tmp_path: Path, db_path: Path) -> None:
    lines = "".join(json.dumps({"event_id": f"j{i}", "ts": "2026-01-01T10:00:00Z", "owner": "acme",
                                "user": "u1", "n": "y" * (i % 50)}) + "\n" for i in range(5000))
    blob = _zstd(lines.encode())
    f = tmp_path / "a.jsonl.zst"
    f.write_bytes(blob[: len(blob) * 3 // 4])
    (out,) = cli("ingest", f, "--format", "json").json()["files"]
    assert out["status"] == "failed" and "truncated" in out["error"], out
    assert _count(db_path) == 0


def test_several_zst_frames_are_read_across(cli, tmp_path: Path) -> None:
    f = tmp_path / "two.csv.zst"
    f.write_bytes(_zstd(_csv(10, "a")) + _zstd(b"b0,2026-01-01T10:00:00Z,acme,u1,P,x\n"))
    (out,) = cli("ingest", f, "--format", "json").json()["files"]
    assert (out["status"], out["accepted"]) == ("ok", 11), out


def test_a_garbage_file_fails_alone(cli, tmp_path: Path, db_path: Path) -> None:
    good = write(tmp_path / "a.csv", _csv(3, "a").decode())
    garbage = tmp_path / "b.csv.zst"
    garbage.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 4)  # zstd magic, then noise
    good2 = write(tmp_path / "c.csv", _csv(2, "c").decode())
    r = cli("ingest", good, garbage, good2, "--format", "json")
    assert r.exit_code == 1
    files = r.json()["files"]
    assert [f["status"] for f in files] == ["ok", "failed", "ok"]
    assert [f["accepted"] for f in files] == [3, 0, 2]
    assert "zstd" in files[1]["error"] and str(garbage) in files[1]["error"]
    assert _count(db_path) == 5
    ingests = cli("ingests", "--format", "json").json()
    assert [i["status"] for i in ingests] == ["ok", "failed", "ok"]
    assert ingests[1]["error"]


@pytest.mark.parametrize("name", ["x.json.zst", "x.jsonl.zst", "x.geojson.zst", "x.csv.gz",
                                  "x.json.gz"])
def test_garbage_of_every_kind_is_a_failed_file_not_a_crash(cli, tmp_path: Path,
                                                            name: str) -> None:
    f = tmp_path / name
    magic = b"\x28\xb5\x2f\xfd" if name.endswith(".zst") else b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
    f.write_bytes(magic + bytes(range(256)) * 4)
    r = cli("ingest", f, "--format", "json")
    assert r.exit_code == 1
    (out,) = r.json()["files"]
    assert out["status"] == "failed" and "internal error" not in out["error"], out
    assert [i["status"] for i in cli("ingests", "--format", "json").json()] == ["failed"]


# ----------------------------------------------------------------- lone surrogates in JSON text

LONE = '"u\\ud800x"'  # a JSON string holding a lone high surrogate, escaped as JSON allows


def test_a_lone_surrogate_rejects_its_json_line_only(cli, tmp_path: Path, db_path: Path) -> None:
    base = '{{"event_id": "{e}", "ts": "2026-01-01T10:00:00Z", "owner": "acme", "user": {u}}}\n'
    f = write(tmp_path / "a.jsonl",
              base.format(e="j1", u='"u1"') + base.format(e="j2", u=LONE)
              + base.format(e="j3", u='"\\ud83d\\ude00"')  # a valid pair (an emoji) is fine
              + '{"event_id": "j4", "ts": "2026-01-01T10:00:00Z", "owner": "acme", "user": "u4",'
                ' "note\\udc00": 1}\n')
    r = cli("ingest", f, "--format", "json")
    (out,) = r.json()["files"]
    assert (out["status"], out["accepted"], out["rejected"]) == ("ok", 2, 2), out
    rejects = {x["line"]: x for x in cli("rejects", "--format", "json").json()}
    assert set(rejects) == {2, 4}
    assert "surrogate" in rejects[2]["reason"] and "\\ud800" in rejects[2]["raw"]


def test_a_lone_surrogate_rejects_its_geojson_feature_only(cli, tmp_path: Path,
                                                           db_path: Path) -> None:
    def feature(e: str, user: str) -> str:
        return ('{"type": "Feature", "geometry": null, "properties": {"event_id": "' + e
                + '", "ts": "2026-01-01T10:00:00Z", "owner": "acme", "user": ' + user + "}}")

    f = write(tmp_path / "a.geojson", '{"type": "FeatureCollection", "features": ['
              + feature("g1", '"u1"') + "," + feature("g2", LONE) + ","
              + feature("g3", '"\\ud83d\\ude00"') + "]}")
    (out,) = cli("ingest", f, "--format", "json").json()["files"]
    assert (out["status"], out["accepted"], out["rejected"]) == ("ok", 2, 1), out
    (reject,) = cli("rejects", "--format", "json").json()
    assert reject["line"] == 2 and "surrogate" in reject["reason"]
    con = duckdb.connect(str(db_path), read_only=True)
    # Never silently replaced (a JSON parser may turn it into "?"):
    assert con.execute("SELECT user_id FROM events ORDER BY event_id").fetchall() == [
        ("u1",), ("\U0001F600",)]
    con.close()
