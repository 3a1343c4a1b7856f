"""A real ``usagectl serve`` process for the tests: started on 127.0.0.1 on a free port, waited
for until it answers, stopped at the end. Never FastAPI's in-process client."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, SAMPLE_DATA

#: The sample's other plans of terra-tokens: `serve --alternatives` and `report --alternatives`.
ALTERNATIVES = SAMPLE_DATA / "plan_alternatives.toml"
#: The moment every server and CLI run of the tests takes as now.
AS_OF = "2026-11-20T12:00:00Z"
TOKENS = """\
[[token]]
token = "acme-owner-token-1"
owner = "acme-farms"

[[token]]
token = "acme-owner-token-1b"
owner = "acme-farms"

[[token]]
token = "acme-owner-token-1c"
owner = "acme-farms"

[[token]]
token = "docuscan-docs-token"
owner = "docuscan"

[[token]]
token = "acme-ames-token-2"
owner = "acme-farms"
user = "agri-ames"

[[token]]
token = "lca-owner-token-3"
owner = "lca-institute"

[[token]]
token = "acme-limits-token-4"
owner = "acme-farms"

[[token]]
token = "acme-docs-token-5"
owner = "acme-farms"

[[token]]
token = "terra-token-6"
owner = "terra-tokens"

[[token]]
token = "docuscan-user-token-7"
owner = "docuscan"
user = "usr_greta"

[[token]]
token = "terra-user-token-8"
owner = "terra-tokens"
user = "tk_live_agentx"

[[token]]
token = "lca-user-token-9"
owner = "lca-institute"
user = "user-b"

[[token]]
token = "lca-docs-token"
owner = "lca-institute"
""" + "".join(f"""
[[token]]
token = "docuscan-token-{c}"
owner = "docuscan"
""" for c in "abcdefghijklmn") + "".join(f"""
[[token]]
token = "{owner}-token-{c}"
owner = "{name}"
""" for owner, name in (("terra", "terra-tokens"), ("lca", "lca-institute")) for c in "abcdef")


#: ``Server.get``'s default: acme-farms' owner tokens in turn, so that no test file's requests
#: reach one token's 30 a minute whatever the order the tests run in.
OWNER = "acme-owner"
_owner_tokens = itertools.cycle(["acme-owner-token-1", "acme-owner-token-1b",
                                 "acme-owner-token-1c"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    log: Path
    proc: subprocess.Popen

    def get(self, path: str, token: str | None = OWNER, **kw) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if token == OWNER:
            token = next(_owner_tokens)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(self.url + path, headers=headers, timeout=60, **kw)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def running_server(db: Path, tokens: Path, *extra: str) -> Iterator[Server]:
    """``python -m usagectl --db DB serve --tokens FILE --as-of AS_OF`` until the block ends."""
    port = free_port()
    log = db.parent / f"serve-{port}.log"
    out = log.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "usagectl", "--db", str(db), "serve",
                             "--tokens", str(tokens), "--port", str(port), "--as-of", AS_OF,
                             *extra], stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(url + "/openapi.json", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not answer: {log.read_text()}")
            time.sleep(0.2)
        yield Server(url, log, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


@pytest.fixture(scope="session")
def serve_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample database every serve test reads (built once per worker)."""
    return sample_database(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="session")
def server(serve_db: Path) -> Iterator[Server]:
    """One server on the sample database for the serve tests of a worker, with the sample's
    other terra plans for the plan route (`serve --alternatives`)."""
    tokens = serve_db.parent / "tokens.toml"
    tokens.write_text(TOKENS)
    with running_server(serve_db, tokens, "--alternatives", str(ALTERNATIVES)) as s:
        yield s


def cli_json(db: Path, *args: str, exit_code: int = 0) -> Any:
    """``usagectl --db DB ARGS --format json`` in-process, parsed."""
    from typer.testing import CliRunner

    from usagectl.cli import app

    r = CliRunner().invoke(app, ["--db", str(db), *args, "--format", "json"],
                           catch_exceptions=False)
    assert r.exit_code == exit_code, r.output
    return json.loads(r.stdout)


def sample_database(folder: Path) -> Path:
    """The bundled sample ingested into ``folder/usage.duckdb`` (in-process CLI)."""
    from typer.testing import CliRunner

    from usagectl.cli import app

    db = folder / "usage.duckdb"
    runner = CliRunner()
    for f in sorted(SAMPLE_DATA.iterdir()):
        if f.suffix in (".csv", ".geojson", ".jsonl", ".parquet"):
            owner = ["--owner", "lca-institute"] if f.name == "licence_calls.csv" else []
            r = runner.invoke(app, ["--db", str(db), "ingest", str(f), *owner, "--quiet"])
            assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["--db", str(db), "contracts", "load",
                            str(SAMPLE_DATA / "contracts.toml"), "--quiet"])
    assert r.exit_code == 0, r.output
    return db
