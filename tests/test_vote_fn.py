"""vote_fn over HTTP, against a real Valkey."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from starlette.responses import Response
from starlette.testclient import TestClient

from common import keys
from common.event import decode
from local.servers import free_port
from vote_fn.app import create_app
from vote_fn.settings import VoteSettings
from vote_fn.voter import COOKIE, MAX_AGE_S, set_cookie

from .conftest import POLLS


@pytest.fixture
def client(environ: dict[str, str], redis_client: redis.Redis) -> Iterator[TestClient]:
    app = create_app(VoteSettings.from_env({**environ, "INSTANCE_ID": "vote-test-1"}))
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


def queued(client: redis.Redis) -> list[dict[str, object]]:
    return [json.loads(raw) for raw in client.lrange(keys.QUEUE, 0, -1)]


def test_api_vote_is_queued_and_acknowledged(client: TestClient, redis_client: redis.Redis) -> None:
    """POST /api/vote answers 202 with the receipt, and that exact event is in the queue."""
    response = client.post("/api/vote", json={"vote": "dogs"})
    assert response.status_code == 202
    body = response.json()
    assert body["vote"] == "dogs" and len(body["vote_id"]) == 32
    [raw] = redis_client.lrange(keys.QUEUE, 0, -1)
    event = decode(raw, POLLS)
    assert (event.vote_id, event.voter, event.option) == (body["vote_id"], body["voter"], "dogs")
    assert COOKIE in response.cookies


def test_the_voter_cookie_keeps_the_same_voter(client: TestClient) -> None:
    """A second vote from the same browser carries the same voter id (so it replaces the first)."""
    first = client.post("/api/vote", json={"vote": "cats"}).json()
    second = client.post("/api/vote", json={"vote": "dogs"}).json()
    assert first["voter"] == second["voter"] and first["vote_id"] != second["vote_id"]


def test_a_forged_cookie_is_not_trusted(client: TestClient) -> None:
    """A voter_id cookie without a valid signature gets a fresh identity."""
    client.cookies.set(COOKIE, "someone-elses-voter-id.forgedsignature")
    body = client.post("/api/vote", json={"vote": "cats"}).json()
    assert body["voter"] != "someone-elses-voter-id"


@pytest.mark.parametrize("secure", [False, True])
@pytest.mark.parametrize(("name", "value"), [("voter_id", "a-b_C9.kid.Zm9v-_"),
                                             ("__Host-vote", "cats"), ("vote", "x_1-y")])
def test_cookies_are_rendered_as_starlette_renders_them(name: str, value: str,
                                                        secure: bool) -> None:
    """The hot path formats Set-Cookie itself; it must be byte for byte what Starlette's
    set_cookie (http.cookies) gives for the same cookie."""
    response = Response()
    response.set_cookie(name, value, max_age=MAX_AGE_S, httponly=True, samesite="lax",
                        secure=secure)
    assert set_cookie(name, value, secure) == (b"set-cookie",
                                               response.headers["set-cookie"].encode())


def test_the_api_answer_carries_the_stack_headers_and_other_methods_get_405(
        client: TestClient) -> None:
    """POST /api/vote is served ahead of the middleware, with the same headers the stack
    adds (request id, security headers); other methods still reach the router."""
    sent = "0123456789abcdef0123456789abcdef"
    response = client.post("/api/vote", json={"vote": "cats"}, headers={"X-Request-ID": sent})
    assert response.status_code == 202 and response.headers["x-request-id"] == sent
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["content-type"] == "application/json"
    assert len(client.post("/api/vote", json={"vote": "x"}).headers["x-request-id"]) == 32
    assert client.get("/api/vote").status_code == 405


def test_form_vote_redirects_and_the_page_marks_the_choice(
        client: TestClient, redis_client: redis.Redis) -> None:
    """POST / answers 303 to the page's confirmation, and GET / then shows the choice and
    the instance id."""
    response = client.post("/", data={"vote": "cats"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/#status"
    page = client.get("/")
    assert page.status_code == 200
    assert 'class="option chosen"' in page.text and 'value="cats"' in page.text
    assert "You voted for <strong>Cats</strong>" in page.text
    assert "vote-test-1" in page.text
    assert [e["vote"] for e in queued(redis_client)] == ["cats"]


def test_a_client_retry_reuses_its_vote_id(client: TestClient, redis_client: redis.Redis) -> None:
    """A client may send its own vote id; a retry then carries the same id."""
    vote_id = "ab" * 16
    for _ in range(2):
        assert client.post("/api/vote", json={"vote": "cats", "vote_id": vote_id}).json()[
            "vote_id"] == vote_id
    assert {e["id"] for e in queued(redis_client)} == {vote_id}


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"json": {"vote": "hamsters"}}, 422),
    ({"json": {"vote": "Cats"}}, 422),
    ({"json": {"vote": " cats"}}, 422),
    ({"json": {"vote": ["cats"]}}, 422),
    ({"json": {}}, 422),
    ({"json": ["cats"]}, 400),
    ({"json": {"vote": "cats", "vote_id": "not-hex"}}, 422),
    ({"content": b"{bad json", "headers": {"content-type": "application/json"}}, 400),
    ({"content": b"vote=cats", "headers": {"content-type": "text/plain"}}, 415),
    ({"content": b'{"vote":"' + b"x" * 2000 + b'"}',
      "headers": {"content-type": "application/json"}}, 413),
])
def test_bad_api_input_gets_a_4xx_and_queues_nothing(
        client: TestClient, redis_client: redis.Redis, kwargs: dict[str, object],
        status: int) -> None:
    """Unknown options, malformed bodies, wrong types and oversized bodies change nothing."""
    response = client.post("/api/vote", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert "error" in response.json()
    assert redis_client.llen(keys.QUEUE) == 0


@pytest.mark.parametrize("data", [{"vote": "hamsters"}, {}, {"vote": ["cats", "dogs"]}])
def test_bad_form_input_gets_a_4xx_page_and_queues_nothing(
        client: TestClient, redis_client: redis.Redis, data: dict[str, object]) -> None:
    response = client.post("/", data=data, follow_redirects=False)  # type: ignore[arg-type]
    assert 400 <= response.status_code < 500
    assert 'role="alert"' in response.text
    assert redis_client.llen(keys.QUEUE) == 0


def test_healthz_reports_redis(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_redis_down_gives_a_fast_503(environ: dict[str, str]) -> None:
    """With nothing listening on the Redis port: 503 + Retry-After in well under a second."""
    import time

    down = {**environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with TestClient(create_app(VoteSettings.from_env(down))) as client:
        started = time.monotonic()
        api = client.post("/api/vote", json={"vote": "cats"})
        form = client.post("/", data={"vote": "cats"}, follow_redirects=False)
        health = client.get("/healthz")
        elapsed = time.monotonic() - started
    assert api.status_code == 503 and api.headers["retry-after"]
    assert form.status_code == 503 and "try again" in form.text
    assert health.status_code == 503
    assert elapsed < 3.0  # three requests, each well under the 1 s promise


def test_labels_are_escaped(environ: dict[str, str], redis_client: redis.Redis) -> None:
    """An option label with markup is shown as text, never as HTML."""
    hostile = {**environ, "VOTE_OPTIONS": "cats:<script>alert(1)</script>,dogs:Dogs"}
    with TestClient(create_app(VoteSettings.from_env(hostile))) as client:
        page = client.get("/").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
