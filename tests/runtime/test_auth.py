"""The optional bearer token for /run (ATOMIC_AGENT_AUTH_TOKEN, from a Secret).

Probes and scrapes stay open; the token is compared in constant time and never logged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.openai_server import FakeServerThread

from .conftest import VALID_INPUT, Fake, Runtime, make_config, metric_value

TOKEN = "tok-9Qm2xV7pLr4Zs8Kd1Nf6Hw3Bj5Ty0Ca"


@pytest.fixture(scope="module")
def closed(
    fake_server: FakeServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """A runtime with the token set, logging at DEBUG (the token must still appear nowhere)."""
    env = {"ATOMIC_AGENT_AUTH_TOKEN": TOKEN, "ATOMIC_AGENT_LOG_LEVEL": "DEBUG"}
    rt = Runtime(make_config(fake_server.base_url), tmp_path_factory.mktemp("auth"), env)
    yield rt.start()
    rt.stop()
    assert TOKEN not in rt.logs()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-of-some-length", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
)
def test_run_without_the_right_token_is_401(
    fake: Fake, closed: Runtime, authorization: str | None
) -> None:
    rt = closed
    before = metric_value(rt.metrics(), "agent_requests_total", status="401")
    headers = {"authorization": authorization} if authorization else {}
    response = httpx.post(f"{rt.url}/run", json=VALID_INPUT, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"]["type"] == "unauthorized"
    assert body["error"]["requestId"] == response.headers["x-request-id"]
    assert metric_value(rt.metrics(), "agent_requests_total", status="401") == before + 1
    assert fake.requests() == []


def test_the_right_token_runs_and_probes_stay_open(fake: Fake, closed: Runtime) -> None:
    rt = closed
    ok = httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=10,
                    headers={"authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert ok.status_code == 200, ok.text
    lower = httpx.post(f"{rt.url}/run", json=VALID_INPUT, timeout=10,
                       headers={"authorization": f"bearer {TOKEN}"})  # fmt: skip
    assert lower.status_code == 200  # the scheme is case-insensitive (RFC 9110)
    for path in ("/healthz", "/readyz", "/metrics", "/schema", "/openapi.json"):
        assert httpx.get(f"{rt.url}{path}").status_code == 200, path
    openapi = httpx.get(f"{rt.url}/openapi.json").json()
    assert openapi["paths"]["/run"]["post"]["security"] == [{"bearer": []}]
    assert "401" in openapi["paths"]["/run"]["post"]["responses"]
    # the fixture checks at teardown that the token is in no log line


def test_without_a_token_run_is_open(runtime: Any) -> None:
    assert httpx.post(f"{runtime.url}/run", json=VALID_INPUT, timeout=10).status_code == 200
    openapi = httpx.get(f"{runtime.url}/openapi.json").json()
    assert "security" not in openapi["paths"]["/run"]["post"]
