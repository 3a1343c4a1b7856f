"""The ``serve`` section: request latency of ``usagectl serve`` against its bare DuckDB peer.

One real ``usagectl --db DB serve --tokens T --port P --as-of AS_OF --rate-limit 1000000 -q``
process on the reports section's database (``speed.reports_db``: the benchmark contract
``tokens-2026`` of ``terra-tokens``), with a tokens file holding one token of that owner. For
each route (``GET /api/v2/usage/summary``, the v2 API's ``report --view consolidated``, and the
land-data API's ``GET /api/public/v1/usage/``, ``usage --owner``'s token row):

- a warm-up of ``warmup`` requests, then ``requests`` sequential requests from one client on
  one persistent HTTP/1.1 connection (``http.client``), each request's wall time from sending
  to the last byte of the body;
- then the same number of requests spread over ``clients`` concurrent clients (threads, one
  persistent connection each), for the throughput under load;
- every answer must be HTTP 200 and byte-for-byte the route's first answer; the server's peak
  RSS is sampled during each phase (``harness._Watch``).

The peer is the same aggregates as one DuckDB query (``speed.PEER_SQL``) on one warm read-only
connection in one ``python -c`` process: the same warm-up, then ``requests`` timed executions of
that query alone. Its first row must hold the figures the server answered. The difference is
what HTTP, FastAPI and usagectl's report layer add — including opening the database read-only
for every request, which the server does (docs/api.md) and the peer does once.

Percentiles are ``harness.percentiles``: linear interpolation between the closest ranks.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import events_gen
from area_scale import _usagectl
from harness import _Watch, fmt_mib, fmt_s, measure, percentiles
from speed import _COUNTED, _TOKEN_FILTER, _TOKENS, AS_OF, PEER_SQL, PERIOD, PY, Options, Section

TOKEN = "serve-benchmark-token"
#: The routes measured: key → path.
ROUTES = {"summary": "/api/v2/usage/summary", "usage": "/api/public/v1/usage/"}
#: The same aggregates as each route, one statement each (the values bound from ``PERIOD``).
PEER_ROUTE_SQL = {
    "summary": PEER_SQL["consolidated"],
    "usage": f"SELECT sum({_TOKENS}) FILTER (WHERE {_TOKEN_FILTER}) AS tokens FROM events "
             f"WHERE {_COUNTED}",
}
PEER_WHAT = {"summary": "sum, count, count distinct (the reports section's `consolidated` peer)",
             "usage": "the token sum alone"}
DEFAULT_REQUESTS = 200
DEFAULT_WARMUP = 5
DEFAULT_CLIENTS = 8
START_TIMEOUT = 120.0

#: One warm read-only connection; per query a warm-up, then ``n`` timed executions. Then, that
#: connection closed, ``n`` times a new read-only connection, the query and its close (what the
#: server does per request; with another connection open DuckDB would reuse its instance).
PEER_LATENCY = """
import json, sys, time, duckdb
db, queries, params = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
warmup, n = int(sys.argv[4]), int(sys.argv[5])
con = duckdb.connect(db, read_only=True)
out = {}
for name, sql in queries.items():
    for _ in range(warmup):
        con.execute(sql, params).fetchall()
    seconds = []
    for _ in range(n):
        t0 = time.perf_counter()
        rows = con.execute(sql, params).fetchall()
        seconds.append(time.perf_counter() - t0)
    out[name] = {"seconds": seconds, "row": [None if v is None else str(v) for v in rows[0]]}
con.close()  # no connection stays open: each connect below opens the file anew
for name, sql in queries.items():
    fresh = []
    for _ in range(n):
        t0 = time.perf_counter()
        other = duckdb.connect(db, read_only=True)
        other.execute(sql, params).fetchall()
        other.close()
        fresh.append(time.perf_counter() - t0)
    out[name]["fresh"] = fresh
print(json.dumps(out))
"""


# ------------------------------------------------------------------------------ pure helpers


def check_answers(statuses: Sequence[int], bodies: Sequence[bytes] | None, first: bytes | None,
                  expect: int = 200) -> str:
    """``N × 200, identical`` when every answer has the status ``expect`` and a body equal to
    ``first`` (the route's first answer), else what went wrong (status 0: no answer, the
    connection failed). ``bodies`` None: the statuses only (``N × 401``)."""
    n = len(statuses)
    if not n:
        return "no requests"
    problems = []
    bad = Counter(s for s in statuses if s != expect)
    if bad:
        problems.append(f"**{sum(bad.values())} of {n} not {expect}** ("
                        + ", ".join(f"{s if s else 'no answer'} ×{k}"
                                    for s, k in sorted(bad.items())) + ")")
    if bodies is not None:
        differ = sum(1 for s, b in zip(statuses, bodies, strict=True)
                     if s == expect and b != first)
        if differ:
            problems.append(f"**{differ} of {n} differ from the first answer**")
    if problems:
        return "; ".join(problems)
    return f"{n} × {expect}" + (", identical" if bodies is not None else "")


def served_figures(route: str, body: bytes | None) -> list[str] | None:
    """The figures a route's answer holds that its peer computes: the summary's owner totals
    (tokens, requests, users: the benchmark contract's meters), the usage route's tokens."""
    try:
        doc = json.loads(body or b"")
        if route == "summary":
            return [str(m["owner_total"]) for m in doc["meters"]]
        return [str(doc["tokens_used"])]
    except (ValueError, KeyError, TypeError):
        return None


def peer_figures(route: str, row: Sequence[str | None]) -> list[str | None]:
    """The same figures from the peer's row (``PEER_SQL['consolidated']``'s columns are tokens,
    input_tokens, output_tokens, requests, users)."""
    return [row[0], row[3], row[4]] if route == "summary" else [row[0]]


def figures_text(ours: list[str] | None, peer: list[str | None] | None) -> str:
    if ours is None or peer is None:
        return "not compared (an answer is missing)"
    return "yes" if ours == peer else f"**no** (usagectl {ours}, peer {peer})"


# ------------------------------------------------------------------------------- measuring


@dataclass
class Phase:
    """One side's measured requests of one route."""
    route: str
    side: str  # what sent them: "usagectl serve, 1 client", …
    seconds: list[float] = field(default_factory=list)
    wall: float = 0.0  # seconds from the first request sent to the last answer read
    answers: str = "–"
    rss_kib: int | None = None
    error: str = ""
    versus_peer: bool = True  # a row whose p50 the table divides by the peer's

    @property
    def is_peer(self) -> bool:
        return self.side.startswith("peer")

    @property
    def per_second(self) -> float | None:
        return len(self.seconds) / self.wall if self.wall > 0 and self.seconds else None


class Client:
    """One persistent HTTP/1.1 connection to the server (reopened only if it drops)."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.opened = 0

    def get(self, path: str, token: str | None = TOKEN) -> tuple[int, bytes, float]:
        """(status, body, seconds); status 0 when the request failed on the connection."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.opened += 1
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        t0 = time.perf_counter()
        try:
            self.conn.request("GET", path, headers=headers)
            r = self.conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return 0, repr(exc).encode(), time.perf_counter() - t0
        seconds = time.perf_counter() - t0
        if r.will_close:
            self.close()
        return r.status, body, seconds

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(db: Path, tokens: Path, port: int) -> list[str]:
    return [*_usagectl(), "--db", str(db), "serve", "--tokens", str(tokens), "--port", str(port),
            "--as-of", AS_OF, "--rate-limit", "1000000", "-q"]


def _wait_until_answering(proc: subprocess.Popen, port: int, log: Path) -> float:
    """Seconds from the start until ``/openapi.json`` answers 200; raises if it never does."""
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"usagectl serve exited {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-600:]!r}")
        client = Client(port, 5.0)
        status, _, _ = client.get("/openapi.json", token=None)
        client.close()
        if status == 200:
            return time.monotonic() - t0
        if time.monotonic() - t0 > START_TIMEOUT:
            raise RuntimeError(f"usagectl serve did not answer in {START_TIMEOUT:g} s: "
                               f"{log.read_text(errors='replace')[-600:]!r}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 20)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)  # the server's own session (start_new_session)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _sequential(client: Client, route: str, n: int, first: bytes | None,
                watch: _Watch) -> tuple[Phase, bytes | None]:
    """The phase, and the route's reference answer: ``first`` (the warm-up's first 200), or
    without a warm-up the first measured 200."""
    phase = Phase(route, "usagectl serve, 1 client")
    statuses, bodies = [], []
    watch.take_peak()
    t0 = time.perf_counter()
    for _ in range(n):
        status, body, seconds = client.get(ROUTES[route])
        statuses.append(status)
        bodies.append(body)
        phase.seconds.append(seconds)
    phase.wall = time.perf_counter() - t0
    phase.rss_kib = watch.take_peak()
    if first is None:
        first = next((b for s, b in zip(statuses, bodies, strict=True) if s == 200), None)
    phase.answers = check_answers(statuses, bodies, first)
    return phase, first


def _floor(client: Client, n: int, watch: _Watch) -> Phase:
    """The usage route without a token: a 401 from the auth dependency, before any database
    open — what uvicorn, FastAPI and the middleware cost alone."""
    phase = Phase("usage", "usagectl serve, 1 client, no token (401: no database)",
                  versus_peer=False)
    statuses = []
    watch.take_peak()
    t0 = time.perf_counter()
    for _ in range(n):
        status, _, seconds = client.get(ROUTES["usage"], token=None)
        statuses.append(status)
        phase.seconds.append(seconds)
    phase.wall = time.perf_counter() - t0
    phase.rss_kib = watch.take_peak()
    phase.answers = check_answers(statuses, None, None, expect=401)
    return phase


def _concurrent(port: int, route: str, n: int, clients: int, first: bytes | None,
                watch: _Watch, timeout: float) -> Phase:
    phase = Phase(route, f"usagectl serve, {clients} clients")
    shares = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    results: list[list[tuple[int, bytes, float]]] = [[] for _ in range(clients)]
    conns = [Client(port, timeout) for _ in range(clients)]
    ready = threading.Barrier(clients + 1)

    def work(i: int) -> None:
        ready.wait()
        results[i].extend(conns[i].get(ROUTES[route]) for _ in range(shares[i]))

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    watch.take_peak()
    ready.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    phase.wall = time.perf_counter() - t0
    phase.rss_kib = watch.take_peak()
    for c in conns:
        c.close()
    done = [r for rs in results for r in rs]
    phase.seconds = [s for _, _, s in done]
    phase.answers = check_answers([s for s, _, _ in done], [b for _, b, _ in done], first)
    return phase


@dataclass
class ServeResult:
    phases: list[Phase] = field(default_factory=list)
    start_seconds: float | None = None
    start_rss_kib: int | None = None
    connections: dict[str, int] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    peer_error: str = ""


def measure_serve(o: Options, db: Path, *, requests: int, warmup: int,
                  clients: int) -> ServeResult:
    res = ServeResult()
    tokens = o.workdir / "serve-tokens.toml"
    tokens.write_text(f'[[token]]\ntoken = "{TOKEN}"\nowner = "{events_gen.OWNER}"\n',
                      encoding="utf-8")
    port = _free_port()
    log = o.workdir / "serve.log"
    served: dict[str, bytes | None] = {}
    with open(log, "wb") as out:
        proc = subprocess.Popen(serve_command(db, tokens, port), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        watch = _Watch(proc.pid, int(o.cap_mib * 1024) if o.cap_mib else None)
        watch.start()
        try:
            res.start_seconds = _wait_until_answering(proc, port, log)
            res.start_rss_kib = watch.take_peak()
            o.log(f"  serve answering after {res.start_seconds:.1f} s, RSS "
                  f"{fmt_mib(res.start_rss_kib)} MiB")
            for route in ROUTES:
                client = Client(port, o.timeout)
                first = None
                for _ in range(warmup):
                    status, body, _ = client.get(ROUTES[route])
                    if status == 200 and first is None:
                        first = body
                seq, first = _sequential(client, route, requests, first, watch)
                res.connections[route] = client.opened
                client.close()
                served[route] = first
                res.phases.append(seq)
                o.log(f"  {ROUTES[route]} 1 client: {_log_line(seq)}")
                if clients > 1:
                    conc = _concurrent(port, route, requests, clients, first, watch, o.timeout)
                    res.phases.append(conc)
                    o.log(f"  {ROUTES[route]} {clients} clients: {_log_line(conc)}")
            client = Client(port, o.timeout)
            for _ in range(warmup):
                client.get(ROUTES["usage"], token=None)
            res.phases.append(_floor(client, requests, watch))
            client.close()
            o.log(f"  {ROUTES['usage']} without a token: {_log_line(res.phases[-1])}")
        finally:
            _stop(proc)
            watch.stop.set()
            watch.join()
            if watch.capped:
                for p in res.phases:
                    p.error = f"the server was killed at the memory cap ({o.cap_mib:,.0f} MiB)"
    run = measure([PY, "-c", PEER_LATENCY, str(db), json.dumps(PEER_ROUTE_SQL),
                   json.dumps(PERIOD), str(warmup), str(requests)],
                  timeout=o.timeout, cap_mib=o.cap_mib, keep_stdout=50_000_000)
    try:
        peer = json.loads(run.stdout) if run.ok else None
    except ValueError:
        peer = None
    if peer is None:
        res.peer_error = run.error or f"no JSON on stdout: {run.stdout[:200]!r}"
    for route in ROUTES:
        got = (peer or {}).get(route)
        phase = Phase(route, "peer: one DuckDB query, warm connection", rss_kib=run.peak_rss_kib,
                      error=res.peer_error)
        fresh = Phase(route, "peer: open read-only + the query + close, each time",
                      rss_kib=run.peak_rss_kib, error=res.peer_error, versus_peer=False)
        if got:
            phase.seconds, fresh.seconds = got["seconds"], got["fresh"]
            phase.wall, fresh.wall = sum(phase.seconds), sum(fresh.seconds)
            res.figures[route] = figures_text(served_figures(route, served.get(route)),
                                              peer_figures(route, got["row"]))
            phase.answers = "same figures as usagectl: " + res.figures[route]
        res.phases += [phase, fresh]
        o.log(f"  {ROUTES[route]} peer: {_log_line(phase)}")
        o.log(f"  {ROUTES[route]} peer opening each time: {_log_line(fresh)}")
    return res


def _log_line(p: Phase) -> str:
    q = percentiles(p.seconds)
    if q is None:
        return f"no requests measured {p.error}"
    return (f"p50 {q[50] * 1000:.1f} ms, p99 {q[99] * 1000:.1f} ms, "
            f"{p.per_second or 0:.1f} requests/s, peak RSS {fmt_mib(p.rss_kib)} MiB; "
            f"{p.answers}")


# --------------------------------------------------------------------------------- markdown

TABLE_HEAD = ("| route | side | requests | p50 ms | p90 ms | p99 ms | max ms | requests/s | "
              "p50 ÷ peer | answers | peak RSS MiB |")


def latency_table(phases: Sequence[Phase]) -> str:
    """One row per route and side, each route's rows together; ``p50 ÷ peer`` divides a
    usagectl row's p50 by the warm peer's of the same route."""
    peer_p50 = {}
    for p in phases:
        q = percentiles(p.seconds)
        if p.is_peer and p.versus_peer and q:
            peer_p50[p.route] = q[50]
    order = list(ROUTES)
    phases = sorted(phases, key=lambda p: order.index(p.route))  # stable: each route's rows
    lines = [TABLE_HEAD,
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for p in phases:
        q = percentiles(p.seconds, (50, 90, 99, 100))
        if q is None:
            ms = ["–"] * 4
        else:
            ms = [fmt_s(q[k] * 1000) for k in (50, 90, 99, 100)]
        rate = "–" if p.per_second is None else f"{p.per_second:,.1f}"
        ratio = "–"
        if q and not p.is_peer and p.versus_peer and peer_p50.get(p.route):
            ratio = f"{q[50] / peer_p50[p.route]:,.1f}×"
        answers = p.answers + (f" ({p.error})" if p.error else "")
        lines.append(f"| `GET {ROUTES[p.route]}` | {p.side} | {len(p.seconds)} | "
                     + " | ".join(ms) + f" | {rate} | {ratio} | {answers} | "
                     f"{fmt_mib(p.rss_kib)} |")
    return "\n".join(lines)


def serve_section(o: Options, db: Path, how: str, *, requests: int = DEFAULT_REQUESTS,
                  warmup: int = DEFAULT_WARMUP, clients: int = DEFAULT_CLIENTS) -> Section:
    sec = Section(
        "serve", f"Serve: request latency at {o.rows:,} events",
        f"One `usagectl --db DB serve --tokens T --port P --as-of {AS_OF} --rate-limit 1000000 "
        "-q` process (the rate limit lifted: the default 30 requests a minute per token would "
        f"refuse the benchmark's requests) with one token of `{events_gen.OWNER}`, whose one "
        f"contract is `{events_gen.CONTRACT_ID}` (the reports section's); database: {how}. "
        "`summary` is `GET /api/v2/usage/summary` (`report --view consolidated`: besides the "
        "three meters it computes each meter's last 14 days, its projection and the requests "
        "breakdown); `usage` is `GET /api/public/v1/usage/` (`usage --owner`'s token row: it "
        "computes every meter of the current period, one query each, and answers the token "
        "meter's; its peer computes the token sum alone). Per "
        f"route: {warmup} warm-up requests, then {requests} sequential requests from one client "
        "on one persistent HTTP/1.1 connection (Python's `http.client`), each timed from "
        "sending the request to reading the last byte of the answer"
        + (f"; then {requests} more spread over {clients} concurrent clients (threads, one "
           "persistent connection each)" if clients > 1 else "")
        + f"; last, {requests} requests of `usage` without a token, answered 401 before any "
        "database work: the floor of uvicorn, FastAPI and the middleware. **The server opens "
        "the database read-only for every request and closes it after** (so that an ingest "
        "can run beside it): every latency includes that open. The peer is the same aggregates "
        "as one DuckDB query on one warm read-only connection in one `python -c` process, "
        f"timed alone (the same warm-up, then {requests} executions), and again opening a "
        "read-only connection, querying and closing each time, as the server does; the "
        "distance from the peer to usagectl is what HTTP, FastAPI, the per-request open and "
        "usagectl's report layer add (*p50 ÷ peer* divides by the warm peer's p50). Every "
        "answer must be a 200 identical to the route's first, and the peer's figures the "
        "server's. Percentiles interpolate linearly between the closest ranks "
        "(`statistics.quantiles(method=\"inclusive\")`, numpy.percentile's default); "
        "requests/s is requests over the phase's wall time (the peer: over the sum of its "
        "query times). Peak RSS: the server's during the phase (sampled every 0.1 s); the "
        "peer process's over its whole run. The machine's other work moves the milliseconds; "
        "the ratios are what to read.")
    res = measure_serve(o, db, requests=requests, warmup=warmup, clients=clients)
    sec.notes.append(latency_table(res.phases))
    if res.start_seconds is not None:
        sec.notes.append(
            f"The server answered {res.start_seconds:.1f} s after it was started, at "
            f"{fmt_mib(res.start_rss_kib)} MiB RSS; the sequential client's requests used "
            + ", ".join(f"{n} connection{'s' if n != 1 else ''} ({route})"
                        for route, n in res.connections.items()) + ".")
    if res.peer_error:
        sec.notes.append(f"Peer: {res.peer_error}.")
    sec.notes.append(f"The peer's query: for `summary`, {PEER_WHAT['summary']}; for `usage`, "
                     f"{PEER_WHAT['usage']}; both over the owner's successful events in the "
                     "period (`benchmarks/serve_bench.py` holds them and the client).")
    return sec
