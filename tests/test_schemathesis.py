"""A bounded schemathesis run against the service's own OpenAPI document.

Three callers, as the trust model has them: a browser (no credentials, every
route), the site's server (API key: decide and events) and a marketer (an
admin token with every scope: the admin routes). Each run must end with no
server error and no answer that breaks the document (status codes, content
types, headers, bodies), and schema-invalid requests must be refused.
Left out: ``positive_data_acceptance``, which expects every schema-valid
request to succeed; some rules no JSON Schema states (a visitor id's
strength, a catalog's own variant ids, a condition naming a known fact with a
value of its type) refuse schema-valid data with a 400 or 422 by design.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import API_KEY
from tests.served import Served, served

SCOPES = ["config:read", "config:write", "publish", "models", "privacy"]
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,negative_data_rejection"
)


@pytest.fixture
def service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    env = {**service_env, "PERSONA_RATE_ADMIN_FAILURES_PER_MIN": "0"}
    with served(env, tmp_path, SCOPES) as s:
        yield s


def schemathesis(port: int, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "schemathesis"
    return subprocess.run(
        [
            str(binary),
            "run",
            f"http://127.0.0.1:{port}/openapi.json",
            "--checks",
            CHECKS,
            "--phases",
            "fuzzing,stateful",
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            *args,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "caller",
    ["browser", "server", "marketer"],
)
def test_the_service_keeps_to_its_document(service: Served, tmp_path: Path, caller: str) -> None:
    args = {
        "browser": [],
        "server": [
            "-H",
            f"Authorization: Bearer {API_KEY}",
            "--include-path-regex",
            "^/v1/(decide|events)",
        ],
        "marketer": [
            "-H",
            f"Authorization: Bearer {service.token}",
            "--include-path-regex",
            "^/v1/admin",
        ],
    }[caller]
    done = schemathesis(service.port, tmp_path, *args)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "generated" in done.stdout and "failure" not in done.stdout.rsplit("SUMMARY", 1)[-1]
