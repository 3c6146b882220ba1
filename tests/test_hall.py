"""A hall behind one address can vote, and floods stay bounded: the figures of issue 17 with
the default limits, against real Valkey (and PostgreSQL for the hall's tallies).

The limits read "now" from Valkey's clock inside the push script, so no test can skip time.
The hall needs no help: it sends everything at once with the real defaults, which is harder
for it than spreading its votes over a minute. The flood and the one browser run with
``VOTE_RATE_WINDOW_SECONDS=3``, a twentieth of the default minute, and the default counts:
every rate is twenty times faster and every count the same, so what passes in one short
window is what passes in one minute with the defaults.

Votes go straight into the ASGI app, no sockets and no HTTP client in between, at thousands
a second: a flood here outruns the limit as a real one would. The last test checks that the
template deploys these defaults, and offers the AWS WAF in front of them.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Self

import anyio
import psycopg
import pytest
import redis
from samtranslator.yaml_helper import yaml_parse
from starlette.types import Message

from common import keys
from support import REPO
from support.functions import drain
from support.stores import tally
from vote_fn.app import create_app
from vote_fn.settings import VoteSettings
from vote_fn.voter import COOKIE

from .conftest import SECRET

Conn = psycopg.Connection[tuple[object, ...]]
ADDRESS = "203.0.113.7"  # the hall's one public address; the app trusts no proxy here
COMPRESSED_MINUTE_S = 3  # a twentieth of the default window


class Answer(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    @property
    def voter_cookie(self) -> str:
        """``voter_id=...`` as the browser sends it back."""
        cookies = [value.partition(";")[0] for key, value in self.headers if key == "set-cookie"]
        return next(cookie for cookie in cookies if cookie.startswith(COOKIE + "="))


class InProcess:
    """vote_fn in this event loop: its lifespan run, each request a direct ASGI call."""

    def __init__(self, settings: VoteSettings) -> None:
        self._app = create_app(settings)
        self._state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._lifespan: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self._state}
        self._lifespan = asyncio.create_task(
            self._app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        assert (await self._from_app.get())["type"] == "lifespan.startup.complete"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._to_app.put({"type": "lifespan.shutdown"})
        async with asyncio.timeout(10):  # a shutdown that hangs fails here, and says so
            assert (await self._from_app.get())["type"] == "lifespan.shutdown.complete"
        assert self._lifespan is not None
        await self._lifespan

    async def vote(self, option: str, cookie: str | None = None, vote_id: str | None = None,
                   ) -> Answer:
        """``POST /api/vote`` from the hall's address, as the page's script sends it."""
        body = json.dumps({"vote": option} | ({"vote_id": vote_id} if vote_id else {})).encode()
        headers = [(b"host", b"vote.example"), (b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/api/vote",
                 "raw_path": b"/api/vote", "root_path": "", "query_string": b"",
                 "headers": headers, "client": (ADDRESS, 40000),
                 "server": ("vote.example", 80), "state": self._state.copy()}
        messages: list[Message] = []
        received = asyncio.Event()

        async def receive() -> Message:
            if received.is_set():
                await asyncio.Event().wait()  # the client stays connected
            received.set()
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            messages.append(message)

        await self._app(scope, receive, send)
        start, *parts = messages
        return Answer(start["status"],
                      [(k.decode().lower(), v.decode()) for k, v in start["headers"]],
                      b"".join(part.get("body", b"") for part in parts))


async def all_of(votes: Iterable[Awaitable[Answer]], in_flight: int = 64) -> list[Answer]:
    """Each vote's answer, with at most ``in_flight`` requests open at a time, as a load
    balancer's connections to one process would have (one process taking thousands in the
    same instant would miss its own 0.5 s deadline)."""
    gate = asyncio.Semaphore(in_flight)

    async def one(vote: Awaitable[Answer]) -> Answer:
        async with gate:
            return await vote

    return await asyncio.gather(*map(one, votes))


def new_vote_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def valkey_now_us(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


@pytest.fixture
def defaults(environ: dict[str, str]) -> dict[str, str]:
    """The test servers, and every limit at its default (the suite's environ turns them
    off)."""
    return {name: value for name, value in environ.items() if name != "VOTE_RATE_LIMIT"}


@dataclass
class Browser:
    option: str
    cookie: str = ""


@pytest.mark.anyio
async def test_a_hall_of_2000_behind_one_address_votes_and_a_fifth_change_their_minds(
        defaults: dict[str, str], function_env: dict[str, str], redis_client: redis.Redis,
        db: Conn) -> None:
    """With the default limits, 2,000 browsers behind one address vote at once (each a new
    voter that keeps its cookie), then 400 of them change their vote: all 2,400 votes are
    accepted, and after the drain the tallies are each browser's latest choice."""
    rng = random.Random(17)
    hall = [Browser(rng.choice(("cats", "dogs"))) for _ in range(2_000)]
    async with InProcess(VoteSettings.from_env(defaults)) as app:
        first = await all_of(app.vote(browser.option, vote_id=new_vote_id(rng))
                             for browser in hall)
        assert Counter(answer.status for answer in first) == {202: 2_000}
        for browser, answer in zip(hall, first, strict=True):
            browser.cookie = answer.voter_cookie
        changing = rng.sample(hall, 400)
        for browser in changing:
            browser.option = "dogs" if browser.option == "cats" else "cats"
        changes = await all_of(app.vote(browser.option, browser.cookie, new_vote_id(rng))
                               for browser in changing)
    assert Counter(answer.status for answer in changes) == {202: 400}
    with anyio.fail_after(60):
        await anyio.to_thread.run_sync(drain, function_env)
    assert tally(db) == Counter(browser.option for browser in hall)


@pytest.mark.anyio
async def test_a_cookie_dropping_flood_from_one_address_gets_at_most_3000_a_minute(
        defaults: dict[str, str], redis_client: redis.Redis) -> None:
    """A client that drops its cookie (every vote a new voter) floods from one address with
    64 requests in flight for most of a compressed minute: it gets the 2,000 of the burst,
    then one vote per refill and 429 with Retry-After for the rest. Measured on Valkey's
    clock, it got what the limit allows for the time it lasted, burst + elapsed / interval,
    which for a whole minute with the defaults is 2,000 + 1,000 = 3,000."""
    settings = VoteSettings.from_env(defaults | {"VOTE_RATE_WINDOW_SECONDS":
                                                 str(COMPRESSED_MINUTE_S)})
    assert settings.limits is not None and settings.limits.new_voters is not None
    limit = settings.limits.new_voters
    answers: list[Answer] = []
    async with InProcess(settings) as app:
        stop = time.monotonic() + 0.85 * COMPRESSED_MINUTE_S

        async def flood() -> None:
            while time.monotonic() < stop:
                answers.append(await app.vote("cats"))

        started = valkey_now_us(redis_client)
        await asyncio.gather(*(flood() for _ in range(64)))
        ended = valkey_now_us(redis_client)
    accepted = sum(answer.status == 202 for answer in answers)
    refused = [answer for answer in answers if answer.status != 202]
    allowed = limit.burst + (ended - started) // limit.interval_us
    assert ended - started <= COMPRESSED_MINUTE_S * 1_000_000  # all within one window
    assert limit.burst + limit.per_window == 3_000
    # Every refill taken, but those of up to 0.3 s at either end (the first and last
    # requests in flight, and the scheduling of a busy machine).
    assert allowed - 100 <= accepted <= allowed <= 3_000, (accepted, allowed, len(answers))
    assert redis_client.llen(keys.QUEUE) == accepted
    assert {(a.status, a.header("retry-after")) for a in refused} == {(429, "1")}
    assert [a.status for a in answers[:limit.burst]] == [202] * limit.burst


@pytest.mark.anyio
async def test_one_browser_sending_100_votes_in_10_seconds_gets_at_most_20_accepted(
        defaults: dict[str, str], redis_client: redis.Redis) -> None:
    """One browser (one kept cookie) sends 100 votes spread evenly over a compressed 10 s:
    its first vote starts its voter, the next 10 are its burst, then one per refill (a
    tenth of a minute); the rest get 429 with Retry-After. At most 20 are accepted: with
    the defaults 12 fit in 10 s."""
    settings = VoteSettings.from_env(defaults | {"VOTE_RATE_WINDOW_SECONDS":
                                                 str(COMPRESSED_MINUTE_S)})
    assert settings.limits is not None
    limit = settings.limits.voter
    span_s = COMPRESSED_MINUTE_S / 6  # 10 s of a minute
    rng = random.Random(100)
    async with InProcess(settings) as app:
        started = valkey_now_us(redis_client)
        begin = time.monotonic()
        answers = [await app.vote("cats", vote_id=new_vote_id(rng))]
        cookie = answers[0].voter_cookie
        for n in range(1, 100):
            await asyncio.sleep(max(0.0, begin + n * span_s / 99 - time.monotonic()))
            answers.append(await app.vote(rng.choice(("cats", "dogs")), cookie,
                                          new_vote_id(rng)))
        ended = valkey_now_us(redis_client)
    accepted = sum(answer.status == 202 for answer in answers)
    allowed = 1 + limit.burst + (ended - started) // limit.interval_us
    assert accepted <= allowed <= 20, (accepted, allowed)
    assert accepted >= 1 + limit.burst
    assert [a.status for a in answers[:1 + limit.burst]] == [202] * (1 + limit.burst)
    refused = [answer for answer in answers if answer.status != 202]
    assert {(a.status, a.header("retry-after")) for a in refused} == {(429, "1")}
    assert len({json.loads(a.body)["voter"] for a in answers if a.status == 202}) == 1


def test_the_cloud_deploys_these_defaults_and_offers_the_waf_off() -> None:
    """template.yaml's vote limits default to the settings' defaults measured above, and its
    optional AWS WAF (a rate-based rule per client address, on the vote load balancer) is
    deployed only when VoteWafRequestsPerMinute is not 0, its default."""
    template = yaml_parse((REPO / "template.yaml").read_text())
    parameters, resources = template["Parameters"], template["Resources"]
    limits = VoteSettings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0",
                                    "VOTE_SECRET": SECRET}).limits
    assert limits is not None and limits.new_voters is not None
    assert (parameters["VoteRateLimit"]["Default"], parameters["VoteNewVotersLimit"]["Default"],
            parameters["VoteNewVotersBurst"]["Default"]) == (
        limits.voter.per_window, limits.new_voters.per_window, limits.new_voters.burst)
    variables = resources["VoteFunction"]["Properties"]["Environment"]["Variables"]
    assert float(variables["VOTE_RATE_WINDOW_SECONDS"]) == limits.voter.window_s
    assert {name: variables[name] for name in ("VOTE_RATE_LIMIT", "VOTE_NEW_VOTERS_LIMIT",
                                               "VOTE_NEW_VOTERS_BURST")} == {
        "VOTE_RATE_LIMIT": {"Ref": "VoteRateLimit"},
        "VOTE_NEW_VOTERS_LIMIT": {"Ref": "VoteNewVotersLimit"},
        "VOTE_NEW_VOTERS_BURST": {"Ref": "VoteNewVotersBurst"}}

    assert parameters["VoteWafRequestsPerMinute"]["Default"] == 0
    assert template["Conditions"]["VoteWaf"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "VoteWafRequestsPerMinute"}, "0"]}]}
    acl, association = resources["VoteWebAcl"], resources["VoteWebAclAssociation"]
    assert acl["Condition"] == association["Condition"] == "VoteWaf"
    assert association["Properties"] == {"ResourceArn": {"Ref": "VoteLoadBalancer"},
                                         "WebACLArn": {"Fn::GetAtt": ["VoteWebAcl", "Arn"]}}
    [rule] = acl["Properties"]["Rules"]
    assert rule["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP", "EvaluationWindowSec": 60,
        "Limit": {"Ref": "VoteWafRequestsPerMinute"}}
    assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
