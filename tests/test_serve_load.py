"""``usagectl serve`` beside cron: 50 concurrent clients for 30 s while ingests run.

Every request ends in a 200 (a 503 during an ingest's commit is retried after its
``Retry-After``, as the API documents), and every figure served is the figure of a committed
state: before the first file, or after the k-th — never a partial file, never going back.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.serve_helpers import TOKENS, running_server, serve_db  # noqa: F401 (fixture)

pytestmark = [pytest.mark.xdist_group("serve"), pytest.mark.slow]

CLIENTS = 50
SECONDS = 30
FILES = 3
ROWS = 40_000  # per file; each row 7 tokens: a file adds 280,000 tokens


def _tokens_file(path: Path, k: int) -> int:
    lines = ["event_id,timestamp,owner_id,api_key_id,product,input_tokens"]
    for i in range(ROWS):
        lines.append(f"load-{k}-{i},2026-11-10T{i % 24:02d}:{i % 60:02d}:00Z,terra-tokens,"
                     f"tk_load_{i % 7},API_TOKENS,7")
    path.write_text("\n".join(lines) + "\n")
    return 7 * ROWS


def test_fifty_clients_during_ingests_see_only_committed_figures(serve_db: Path,
                                                                 tmp_path: Path) -> None:
    db = tmp_path / "load.duckdb"
    shutil.copy(serve_db, db)
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(TOKENS)
    files = [tmp_path / f"tokens-{k}.csv" for k in range(FILES)]
    deltas = [_tokens_file(f, k) for k, f in enumerate(files)]
    with running_server(db, tokens, "--rate-limit", "1000000") as server:
        auth = {"Authorization": "Bearer terra-token-6"}
        before = httpx.get(server.url + "/api/public/v1/usage/", headers=auth).json()
        allowed = [before["tokens_used"]]
        for d in deltas:
            allowed.append(allowed[-1] + d)
        seen: list[list[int]] = [[] for _ in range(CLIENTS)]
        problems: list[str] = []
        retried = [0]
        stop = time.monotonic() + SECONDS

        def client(n: int) -> None:
            route = ("/api/public/v1/usage/" if n % 2 else
                     "/api/v2/usage/summary?contract=terra-pro-monthly&meter=tokens")
            with httpx.Client(base_url=server.url, headers=auth, timeout=120) as http:
                while time.monotonic() < stop:
                    r = http.get(route)
                    if r.status_code == 503:
                        retried[0] += 1
                        time.sleep(int(r.headers["Retry-After"]))
                        continue
                    if r.status_code != 200:
                        problems.append(f"{route}: {r.status_code} {r.text[:300]}")
                        return
                    body = r.json()
                    value = (body["tokens_used"] if n % 2 else
                             body["meters"][0]["billed"])
                    seen[n].append(value)

        def ingest() -> None:
            for f in files:
                r = subprocess.run([sys.executable, "-m", "usagectl", "--db", str(db),
                                    "ingest", str(f), "--quiet"], capture_output=True,
                                   text=True, timeout=600)
                if r.returncode != 0:
                    problems.append(f"ingest {f.name}: {r.stdout} {r.stderr}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        writer = threading.Thread(target=ingest)
        for t in threads:
            t.start()
        writer.start()
        writer.join()
        for t in threads:
            t.join()
        after = httpx.get(server.url + "/api/public/v1/usage/", headers=auth).json()
    assert problems == []
    assert after["tokens_used"] == allowed[-1]  # every file landed
    for values in seen:
        assert values, "a client got no answer in 30 s"
        assert set(values) <= set(allowed), sorted(set(values) - set(allowed))
        steps = [allowed.index(v) for v in values]
        assert steps == sorted(steps)  # a client never sees an older state after a newer one
    print(f"requests {sum(len(v) for v in seen)}, retried 503 {retried[0]}, states seen "
          f"{sorted({allowed.index(v) for vs in seen for v in vs})}")
    assert sum(len(v) for v in seen) >= CLIENTS
