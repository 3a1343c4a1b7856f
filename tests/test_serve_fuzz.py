"""Property-based fuzzing of the served OpenAPI schema (schemathesis): whatever the parameters
and bodies, a real ``usagectl serve`` never answers 500, answers only the statuses its schema
documents, and its JSON matches the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from tests.serve_helpers import TOKENS, running_server, serve_db  # noqa: F401 (fixture)

pytestmark = pytest.mark.xdist_group("serve")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="session")
def fuzz_server(serve_db: Path):  # noqa: ANN201
    """A server of its own with a rate limit high enough that fuzzing reaches the routes."""
    tokens = serve_db.parent / "fuzz-tokens.toml"
    tokens.write_text(TOKENS)
    with running_server(serve_db, tokens, "--rate-limit", "1000000") as s:
        yield s


def _fuzz(server, token: str, max_examples: int, path_prefix: str = "/",
          contract_id: str | None = None) -> int:
    """Every operation of the served schema under ``path_prefix``, ``max_examples`` generated
    requests each (deterministic); returns how many operations ran. Driven by hand rather than
    by schemathesis' pytest plugin, whose lazy fixtures do not run under pytest 9."""
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(path_prefix):
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=max_examples, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), database=None)
        def run(case) -> None:  # noqa: ANN001
            if contract_id is not None and "contract_id" in (case.path_parameters or {}):
                case.path_parameters["contract_id"] = contract_id
            # A generous timeout: the suite runs beside other load (a slow answer under load is
            # not what this test looks for; the load test measures that).
            case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=120,
                                   headers={"Authorization": f"Bearer {token}"})

        run()
        ran += 1
    return ran


def test_fuzzed_requests_never_fail_the_server(fuzz_server) -> None:  # noqa: ANN001
    # docuscan: every v2 route has a contract to answer from; the Leaf routes meet its
    # contract without an area meter (404) and random ids (404/403), each in the error shape.
    assert _fuzz(fuzz_server, "docuscan-token-a", 30) >= 14


def test_fuzzed_leaf_requests_on_an_area_contract(fuzz_server) -> None:  # noqa: ANN001
    assert _fuzz(fuzz_server, "acme-owner-token-1", 15, "/billing/",
                 "acme-farms-2026:boundaries") == 5
