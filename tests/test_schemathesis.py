"""schemathesis against the live functions (real uvicorn processes on real Valkey and
PostgreSQL): every operation of each OpenAPI description, with generated valid and invalid
requests, must answer as described: no 5xx, statuses, headers and bodies as documented.
The number of examples is bounded so the suite stays fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema

from common import keys
from support.functions import FunctionProcess
from support.processes import child_env

from .conftest import SECRET, prepare_schema

EXAMPLES = 25  # per operation
# Refusals the descriptions document for bad input (413, and 409 for a vote that names a
# poll that is not open before its option is looked at, included, which schemathesis
# does not expect by default).
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {
    "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 429]}}})
INPUTS = ("path_parameters", "query", "headers", "cookies", "body")


def function_env(redis_url: str, database_url: str, **settings: str) -> dict[str, str]:
    return child_env(REDIS_URL=redis_url, DATABASE_URL=database_url,
                     VOTE_OPTIONS="cats:Cats,dogs:Dogs", VOTE_SECRET=SECRET, **settings)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("schemathesis")


@pytest.fixture(scope="module")
def vote_fn(redis_url: str, database_url: str, log_dir: Path) -> Iterator[FunctionProcess]:
    # The rate limit stays on (a generous one): 429 answers must match the description too.
    env = function_env(redis_url, database_url, VOTE_RATE_LIMIT="500")
    try:
        with FunctionProcess("vote", env, log_dir) as process:
            yield process
    finally:
        client = redis.Redis.from_url(redis_url)
        client.delete(keys.QUEUE, *client.keys("{votes}:rate:*"))
        client.close()


@pytest.fixture(scope="module")
def result_fn(redis_url: str, database_url: str, log_dir: Path) -> Iterator[FunctionProcess]:
    env = function_env(redis_url, database_url, STREAM_LIFETIME_SECONDS="1")
    prepare_schema(database_url)
    with FunctionProcess("result", env, log_dir) as process:
        yield process


bounded = settings(max_examples=EXAMPLES, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))


def exercise(schema: BaseSchema, mode: GenerationMode, **call: Any) -> list[str]:
    """Send generated requests to every operation and check each answer; the labels of
    the operations exercised."""
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        inputs = sum(len(getattr(operation, part)) for part in INPUTS)
        if mode is GenerationMode.NEGATIVE and not inputs:
            continue  # nothing to send wrong
        labels.append(operation.label)

        @given(case=operation.as_strategy(generation_mode=mode))
        @bounded
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(**call)

        check()
    return labels


# The plugin's lazy loader (from_fixture) does not run under this pytest; loading the
# description inside the test does the same.
@pytest.mark.parametrize("mode", list(GenerationMode))
def test_vote_fn_answers_as_its_description_says(vote_fn: FunctionProcess,
                                                 mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{vote_fn.url}/openapi.json", config=CONFIG)
    assert "POST /api/vote" in exercise(schema, mode, allow_redirects=False)


@pytest.mark.parametrize("mode", list(GenerationMode))
def test_result_fn_answers_as_its_description_says(result_fn: FunctionProcess,
                                                   mode: GenerationMode) -> None:
    # /stream is an endless response; its one input (Last-Event-ID) has its own tests.
    schema = schemathesis.openapi.from_url(f"{result_fn.url}/openapi.json",
                                           config=CONFIG).exclude(
        path="/stream")
    assert "GET /api/receipts/{vote_id}" in exercise(schema, mode)
