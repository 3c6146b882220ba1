"""vote_fn: ``GET /`` the vote page, ``POST /`` a vote from its form, and ``GET /admin`` the
presenter's page (vote_fn/pages.py), ``POST /api/vote`` a vote as JSON (vote_fn/api.py),
``GET /api/poll`` the open poll, and the presenter's API (vote_fn/admin.py). Casting a vote
is vote_fn/casting.py, the polls vote_fn/polls.py; the edge in front of every route is
common/edge.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypedDict

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from common import http_metrics, openapi
from common.assets import Pages
from common.edge import Direct, FunctionApp, json_answer
from common.logs import configure_logging
from common.proxies import TrustedProxies
from common.redis_client import open_redis
from common.settings import exit_on_error
from vote_fn.admin import close_poll, create_poll, current_poll, open_poll
from vote_fn.api import PATH, vote_api
from vote_fn.casting import Voting
from vote_fn.pages import admin_page, page_policy, show, vote_form
from vote_fn.polls import PollBook
from vote_fn.queue import VoteQueue
from vote_fn.refusals import RETRY_UNAVAILABLE_S
from vote_fn.settings import VoteSettings
from vote_fn.voter import VoterIds

HERE = Path(__file__).parent
PAGES = Pages(HERE)  # its templates and static files


class State(TypedDict):
    settings: VoteSettings
    polls: PollBook
    voting: Voting
    queue: VoteQueue
    templates: Jinja2Templates
    page_policy: dict[str, str]


async def healthz(request: Request) -> Response:
    """vote_fn can do its one job only while a vote can be queued, so health is a push of
    no votes: the same round trip, to the node that holds the queue, within the same
    deadline. (In cluster mode a PING goes to some other node, which answers while the
    queue's primary hangs.)"""
    queue: VoteQueue = request.state.queue
    try:
        await queue.check()
    except (RedisError, TimeoutError) as error:
        return json_answer({"status": "unavailable", "redis": str(error) or "no answer in time"},
                           503, {"Retry-After": str(RETRY_UNAVAILABLE_S)})
    return json_answer({"status": "ok"}, 200)


def open_option_ids(request: Request) -> tuple[str, ...]:
    polls: PollBook = request.state.polls
    poll = polls.open
    return poll.options.ids if poll else ()


def create_app(settings: VoteSettings | None = None) -> Starlette:
    settings = settings or exit_on_error(VoteSettings.from_env)
    configure_logging(settings.log_format, "vote")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        # A client that waits for replicas must not retry (vote_fn/queue.py says why).
        redis = open_redis(settings.redis, retries=0 if settings.wait else 1)
        try:
            async with PollBook(redis, settings.first_poll,
                                presenter=settings.admin_token is not None) as polls:
                queue = VoteQueue(redis, settings.limits, wait=settings.wait)
                voting = Voting(polls, VoterIds(settings.keys), queue)
                yield {"settings": settings, "polls": polls, "voting": voting, "queue": queue,
                       "templates": PAGES.templates,
                       "page_policy": page_policy(settings.results_url)}
        finally:
            await redis.aclose()

    return FunctionApp(
        "vote",
        routes=[
            Route("/", show, methods=["GET"]),
            Route("/", vote_form, methods=["POST"]),
            Route("/admin", admin_page, methods=["GET"]),
            Direct(PATH, vote_api, methods=["POST"]),
            Route("/api/poll", current_poll, methods=["GET"]),
            Route("/api/admin/polls", create_poll, methods=["POST"]),
            Route("/api/admin/polls/{poll}/open", open_poll, methods=["POST"]),
            Route("/api/admin/polls/{poll}/close", close_poll, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", healthz),
            http_metrics.metrics_route,
            openapi.route(HERE / "openapi.yaml", open_option_ids),
            PAGES.route,
        ],
        lifespan=lifespan,
        proxies=TrustedProxies(settings.trusted_proxies),
    )
