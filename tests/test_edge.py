"""The edge (common/edge.py) in front of every route of every function: each answer, served
through Starlette's stack or ahead of it, with or without a path prefix (``--root-path``),
carries exactly one request id and the security headers. The routes are read from the apps,
so a route added later is walked too."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from common.headers import BASE_HEADERS
from result_fn.app import create_app as create_result_app
from result_fn.settings import ResultSettings
from vote_fn.app import create_app as create_vote_app
from vote_fn.settings import VoteSettings
from worker_fn.app import create_app as create_worker_app
from worker_fn.settings import WorkerSettings

SECURITY_HEADERS = [name.decode() for name, _ in BASE_HEADERS]
FUNCTIONS: dict[str, Callable[[dict[str, str]], Any]] = {
    "vote": lambda env: create_vote_app(VoteSettings.from_env(env)),
    "worker": lambda env: create_worker_app(WorkerSettings.from_env(env)),
    "result": lambda env: create_result_app(ResultSettings.from_env(env)),
}
PARAMETER = re.compile(r"{([^}:]+)(:[^}]+)?}")


def requests_for(route: BaseRoute) -> Iterator[tuple[str, str]]:
    """(method, path) for each method of the route, its parameters filled in."""
    if isinstance(route, Mount):  # static files: one that exists
        directory = Path(route.app.directory)  # type: ignore[attr-defined]
        yield "GET", f"{route.path}/{sorted(p.name for p in directory.iterdir())[0]}"
        return
    assert isinstance(route, Route), route
    path = PARAMETER.sub("0123456789abcdef0123456789abcdef", route.path)
    for method in sorted(route.methods or {"GET"}):
        yield method, path


@pytest.fixture
def apps(environ: dict[str, str], redis_client: redis.Redis,
         db: psycopg.Connection[tuple[object, ...]]) -> dict[str, dict[str, str]]:
    """Each function's environment: real Valkey and PostgreSQL; streams that end by themselves."""
    return {name: {**environ, "STREAM_LIFETIME_SECONDS": "1"} for name in FUNCTIONS}


@pytest.mark.parametrize("root_path", ["", "/poll"])
@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_every_answer_carries_one_request_id_and_the_security_headers(
        apps: dict[str, dict[str, str]], function: str, root_path: str) -> None:
    app = FUNCTIONS[function](apps[function])
    walked = []
    with TestClient(app, root_path=root_path, raise_server_exceptions=False) as client:
        for route in [*app.routes, Route("/no/such/page", lambda: None)]:
            for method, path in requests_for(route):
                response = client.request(method, root_path + path)
                walked.append(f"{method} {path} {response.status_code}")
                what = f"{function}: {method} {root_path}{path} answered {response.status_code}"
                assert len(response.headers.get_list("x-request-id")) == 1, what
                for name in SECURITY_HEADERS:
                    assert len(response.headers.get_list(name)) == 1, f"{what}: {name}"
    assert len(walked) >= len(app.routes)


def test_a_request_id_sent_is_kept_and_a_malformed_one_replaced(
        apps: dict[str, dict[str, str]]) -> None:
    """The caller's X-Request-ID comes back when it is a UUID; anything else gets a new one."""
    sent = "0123456789abcdef0123456789abcdef"
    with TestClient(FUNCTIONS["vote"](apps["vote"])) as client:
        assert client.get("/", headers={"X-Request-ID": sent}).headers["x-request-id"] == sent
        replaced = client.get("/", headers={"X-Request-ID": "x" * 300}).headers["x-request-id"]
    assert re.fullmatch("[0-9a-f]{32}", replaced)
