"""The HTML report, opened in a real headless Chromium (SPEC §7).

Checks: a non-blank screenshot; zero network requests (every request the browser makes is sent
to a local proxy that counts them); no console errors; script payloads in the data stay inert.
`make test` installs Debian's chromium when missing; without it the browser tests skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA, write

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AS_OF = "2026-11-20T12:00:00Z"
PAYLOAD_USER = ('<script>document.title="pwned"</script><img src=x onerror="document.body.dataset.pwned=1">'
                '<img src="http://leak.example/steal.png">')
# Chromium's own service traffic (network time, sign-in probes) is not the page's doing.
BROWSER_HOSTS = (b"google.com", b"gstatic.com", b"googleapis.com", b"gvt1.com", b"gvt2.com")


@pytest.fixture
def report(cli, tmp_path: Path) -> Path:
    cli("ingest", SAMPLE_DATA, "--quiet")
    evil = write(tmp_path / "evil.csv",
                 "event_id,ts,owner_id,user_id,product,geometry\n"
                 f'x1,2026-11-02T10:00:00Z,acme-farms,"{PAYLOAD_USER.replace(chr(34), chr(34) * 2)}",'
                 'FIELDS_BOUNDARY,"POLYGON((-93.6 42.0,-93.59 42.0,-93.59 42.01,-93.6 42.01,-93.6 42.0))"\n')
    assert cli("ingest", evil, "--format", "json").json()["totals"]["accepted"] == 1
    cli("contracts", "load", SAMPLE_DATA / "contracts.toml")
    out = tmp_path / "acme.html"
    r = cli("report", "-c", "acme-farms-2026", "--as-of", AS_OF, "--format", "html", "--out", out)
    assert r.exit_code == 0, r.stderr
    return out


def test_html_is_self_contained_and_escaped(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert len(html.encode()) < 2_000_000
    lowered = html.lower()
    for needle in ('src="http', "src='http", "href=", "<script", "<link", "@import", "url(", "<img"):
        assert needle not in lowered, needle  # the data's payload appears only escaped
    assert "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;" in html
    assert "Content-Security-Policy" in html
    for section in ("Daily consumption", "Users", "Overlap", "Consumption log", "usagectl 0."):
        assert section in html
    assert "$324.00" in html or "$3" in html  # the boundaries overage is priced


class _CountingProxy:
    """A TCP listener standing in for every network destination: it counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(1)
            try:
                self.requests.append(conn.recv(4096))
            except OSError:
                self.requests.append(b"")
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


def _chromium(args: list[str], proxy: _CountingProxy, profile: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--disable-extensions", "--disable-quic",
           f"--proxy-server=127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
           # Virtual time: the page (fonts, SVG charts, layout) has settled before the screenshot or
           # the DOM dump, however loaded the machine is.
           "--virtual-time-budget=10000", "--run-all-compositor-stages-before-draw",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")
def test_real_browser_renders_fetches_nothing_and_runs_no_payload(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    proxy = _CountingProxy()
    try:
        shot = tmp_path / "shot.png"
        r = _chromium([f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri()], proxy,
                      tmp_path / "p1")
        assert shot.exists(), r.stderr[-2000:]
        dom = _chromium(["--dump-dom", report.as_uri()], proxy, tmp_path / "p2")
    finally:
        proxy.close()
    page_requests = [q for q in proxy.requests
                     if not any(h in q.split(b"\r\n")[0] for h in BROWSER_HOSTS)]
    assert page_requests == [], page_requests[:3]
    image = Image.open(shot).convert("L")
    lo, hi = image.getextrema()
    assert hi - lo > 100  # text and charts, not a blank page
    colours = len(image.resize((300, 600)).getcolors(maxcolors=256 * 256) or [])
    assert colours > 20
    assert "pwned" not in dom.stdout.split("<body")[0]  # the title was not rewritten
    assert "data-pwned" not in dom.stdout
    assert "&lt;script&gt;" in dom.stdout
    errors = [line for line in (r.stderr + dom.stderr).splitlines()
              if "CONSOLE" in line and ("Uncaught" in line or "Refused" in line or "Error" in line)]
    assert errors == []
