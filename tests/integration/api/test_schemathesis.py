"""schemathesis, from the served OpenAPI spec: whatever it sends, the API never answers with
a 5xx. The user's run leaves out revoking tokens (it would revoke its own, and every later
request would stop at authentication); the edge service's run covers /internal. The spec is
off by default (SLIPWAY_API_DOCS): these runs use an API that serves it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.store import accounts, apps
from tests.control_support import INTERNAL_SECRET, ApiServer, empty_database, serve_api

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
RUNS = {
    "user": ["--exclude-path-regex", "^/internal", "--exclude-path", "/v1/tokens/{token_id}"],
    "edge service": ["--include-path-regex", "^/internal"],
}


@pytest.fixture(scope="module")
def documented_api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("api-docs")
    with serve_api(f"sqlite:///{tmp / 'slipway.db'}", tmp / "data", api_docs=True) as server:
        yield server


@pytest.fixture
def documented_api(documented_api_server: ApiServer) -> ApiServer:
    empty_database(documented_api_server.database)
    return documented_api_server


@pytest.mark.timeout(600)
@pytest.mark.parametrize("who", list(RUNS))
def test_no_server_errors(documented_api: ApiServer, tmp_path: Path, who: str) -> None:
    with documented_api.database.session() as session:
        alice = accounts.create_user(session, "alice")
        apps.create_app(session, alice, "shop")
        token = accounts.create_token(session, alice).token
    secret = token if who == "user" else INTERNAL_SECRET
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{documented_api.url}/openapi.json",
            *RUNS[who],
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {secret}",
            "--max-examples",
            "40",
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=550,
        cwd=tmp_path,
    )
    report = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counts is not None and counts.group(1) == counts.group(2), report
    assert int(counts.group(1)) > 100
    assert "Authentication failed" not in result.stdout, report  # the logic was reached
