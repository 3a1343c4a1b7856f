"""Docs that cannot drift: the CLI reference is generated, and the README's examples run."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, SAMPLE_DATA
from tests.serve_helpers import serve_db, server  # noqa: F401 (fixtures)
from usagectl.cli import docgen

# The illustrative file the README ingests to show rejects.
LATE_TOKENS = (
    "event_id,timestamp,owner_id,api_key_id,product,input_tokens\n"
    "t-9001,2026-11-02T09:00:00Z,terra-tokens,tk_live_ops,API_TOKENS,12.5\n"
    "t-9002,2026-11-02 25:00,terra-tokens,tk_live_ops,API_TOKENS,7\n"
    "t-9003,2026-11-02T09:10:00Z,terra-tokens,tk_live_ops,API_TOKENS,-40\n"
    "t-9004,2026-12-02T09:20:00Z,terra-tokens,tk_live_ops,API_TOKENS,420\n"
)
# A licence API's raw gateway log (no product column; request URLs), dated after the README's
# as-of so that the README's report figures are those `make demo` prints.
GATEWAY = (
    "timestamp,X-User-ID,X-Organization-ID,endpoint,status_code\n"
    '2026-12-01T09:00:00Z,gw-user-1,org-7,"/datasets/12345?indicators=964,897,962",200\n'
    "2026-12-01T09:05:00Z,gw-user-1,org-7,/datasets/12345?indicators=964,200\n"
    "2026-12-01T09:10:00Z,gw-user-2,org-7,/datasets/search?q=steel,200\n"
)


def test_cli_reference_is_up_to_date() -> None:
    current = (REPO / "docs" / "cli-reference.md").read_text(encoding="utf-8")
    assert current == docgen.render(), "docs/cli-reference.md is stale: run `make docs`"


def test_every_command_is_in_the_reference() -> None:
    from typer.main import get_command

    from usagectl.cli import app

    group = get_command(app)
    names = set(group.commands)  # type: ignore[attr-defined]
    documented = {p[0] for p in docgen.COMMANDS if p}
    assert names == documented


def _examples(readme: str) -> list[tuple[str, list[str]]]:
    """(command, shown output lines) for every `$ usagectl …` line in console blocks."""
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", readme, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out:
                out[-1][1].append(line)
    return out


def test_readme_examples_run_and_show_real_output(tmp_path: Path) -> None:
    shutil.copytree(SAMPLE_DATA, tmp_path / "sample_data")
    (tmp_path / "late_tokens.csv").write_text(LATE_TOKENS)
    (tmp_path / "gateway.csv").write_text(GATEWAY)
    env = {**os.environ, "USAGECTL_DB": str(tmp_path / "usage.duckdb"), "COLUMNS": "120"}
    examples = _examples((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(examples) >= 6
    for command, shown in examples:
        args = shlex.split(command)
        assert args[0] == "usagectl"
        r = subprocess.run([sys.executable, "-m", "usagectl", *args[1:]], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (command, r.stdout, r.stderr)
        actual = r.stdout + r.stderr
        for line in shown:
            # Lines with an ellipsis or timings are abbreviated in the README.
            if "…" in line or not line.strip() or re.search(r"\b0\.\d\d\b", line):
                continue
            assert line.rstrip() in actual, (command, line, actual)


def test_the_docs_stand_alone() -> None:
    """README and docs/ name no file a user's clone does not have: every relative link resolves
    inside the repository, and nothing points at the planning documents beside the checkout."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    problems = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(REPO) or not path.exists():
                problems.append(f"{page.name}: link to {target}")
        for word in ("../shared", "SPEC.md", "SPEC §", "RELIABILITY.md", "STYLE.md"):
            if word in text:
                problems.append(f"{page.name}: mentions {word}")
    assert problems == []


def test_semantics_names_every_rule_area() -> None:
    """docs/semantics.md is the rulebook: one section per stage, from a log line to an invoice."""
    text = (REPO / "docs" / "semantics.md").read_text(encoding="utf-8")
    for heading in ("## 1. Events", "## 2. Ingest", "## 3. Contracts and periods",
                    "## 4. Which events a meter counts", "## 5. What each aggregate computes",
                    "## 6. Limits, money and projections", "## 7. Outputs"):
        assert heading in text


def test_plan_doc_example_runs_and_shows_real_output(tmp_path: Path) -> None:
    """docs/plan.md: its alternatives file (the first TOML block) is written where its example
    reads it, and every `$ usagectl …` line runs against the bundled sample and prints the
    lines shown under it."""
    shutil.copytree(SAMPLE_DATA, tmp_path / "sample_data")
    text = (REPO / "docs" / "plan.md").read_text(encoding="utf-8")
    toml = re.search(r"```toml\n(.*?)```", text, flags=re.S)
    assert toml is not None
    examples = _examples(text)
    files = {a.split()[1] for c, _ in examples for a in re.findall(r"--alternatives \S+", c)}
    assert files == {"docuscan-plans.toml"}
    (tmp_path / "docuscan-plans.toml").write_text(toml.group(1), encoding="utf-8")
    env = {**os.environ, "USAGECTL_DB": str(tmp_path / "usage.duckdb"), "COLUMNS": "120"}
    assert any("--view plan" in c for c, _ in examples)
    for command, shown in examples:
        args = shlex.split(command)
        assert args[0] == "usagectl"
        r = subprocess.run([sys.executable, "-m", "usagectl", *args[1:]], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (command, r.stdout, r.stderr)
        for line in shown:
            assert line.rstrip() in r.stdout + r.stderr, (command, line, r.stdout)


def _curl_examples(page: str) -> list[tuple[str, list[str]]]:
    """(command, shown output lines) for every `$ curl …` line of a page's console blocks."""
    return [(c, shown) for c, shown in _examples(page) if c.startswith("curl ")]


@pytest.mark.xdist_group("serve")
def test_api_doc_curl_examples_run_against_a_live_server(server) -> None:  # noqa: F811
    """Every `curl` of docs/api.md, run by a shell against a real `usagectl serve` on the
    sample, prints what the page shows (lines with … or a request id are abbreviations)."""
    examples = _curl_examples((REPO / "docs" / "api.md").read_text(encoding="utf-8"))
    assert len(examples) >= 21
    env = {**os.environ, "USAGECTL_URL": server.url, "ACME_TOKEN": "acme-docs-token-5",
           "TERRA_TOKEN": "terra-token-6", "DOCUSCAN_TOKEN": "docuscan-docs-token",
           "LCA_TOKEN": "lca-docs-token"}
    routes = set()
    for command, shown in examples:
        r = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, (command, r.stderr)
        body = json.loads(r.stdout)
        if "error" not in " ".join(shown[:3]):
            assert not (isinstance(body, dict) and "error" in body), (command, r.stdout)
        for line in shown:
            if "…" in line or "request_id" in line or not line.strip():
                continue
            assert line.rstrip() in r.stdout, (command, line, r.stdout)
        routes.add(re.sub(r"\?.*", "", command.split("$USAGECTL_URL")[1].split('"')[0]))
    # One example per route.
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    documented = {re.sub(r"acme-farms-2026:boundaries", "{contract_id}",
                         re.sub(r"leaf-user/[^/]+$", "leaf-user/{user_id}", p)) for p in routes}
    assert set(paths) <= documented, set(paths) - documented
