"""vote_fn: ``GET /`` vote page, ``POST /`` form vote, ``POST /api/vote`` JSON vote
(vote_fn/api.py, which also casts the form's votes).

A vote is acknowledged only once Redis holds it. Redis unreachable or slow: a 503
with ``Retry-After`` inside a second, never a hang. Before anything is queued a vote
must pass the cross-site check (403), the strict reading of its body (4xx) and the
client's rate limit (429); SECURITY.md says what each defends against.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

import orjson
from redis.exceptions import RedisError
from starlette._utils import get_route_path  # what the router matches (not public API)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from common import observability, openapi
from common.headers import SecurityHeaders
from common.logs import configure_logging
from common.proxies import TrustedProxies
from common.redis_client import RedisClient, open_redis
from common.settings import exit_on_error
from vote_fn import metrics
from vote_fn.api import (
    PATH,
    RETRY_AFTER_S,
    VoteApi,
    cast,
    changed_cookies,
    refuse_cross_site,
    unavailable,
)
from vote_fn.ballot import FORM, BadVote, form_vote, read_body
from vote_fn.queue import DEADLINE_S, VoteQueue
from vote_fn.ratelimit import RateLimited
from vote_fn.settings import VoteSettings
from vote_fn.voter import VoterIds, cookie_names, set_cookie

log = logging.getLogger("vote_fn")
HERE = Path(__file__).parent


class State(TypedDict):
    redis: RedisClient
    queue: VoteQueue


def page_policy(results_url: str) -> dict[str, str]:
    """The page's Content-Security-Policy (common/headers.py adds the other headers)."""
    connect = "'self'"
    if results_url:  # the page polls receipts from result_fn
        parts = urlsplit(results_url)
        connect += f" {parts.scheme}://{parts.netloc}"
    return {
        "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                                   f"img-src 'self' data:; connect-src {connect}; "
                                   "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    }


def json_response(content: dict[str, Any], status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


class VoteApp(Starlette):
    """Serves ``POST /api/vote`` with ``vote_api`` ahead of the middleware stack (see
    vote_fn/api.py); every other request goes through the stack as usual."""

    def __init__(self, vote_api: VoteApi, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._vote_api = vote_api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The path as the router sees it, without the prefix of a --root-path mount.
        if (scope["type"] == "http" and scope["method"] == "POST"
                and get_route_path(scope) == PATH):
            scope["app"] = self
            await self._vote_api(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: VoteSettings | None = None) -> Starlette:
    settings = settings or exit_on_error(VoteSettings.from_env)
    configure_logging(settings.log_format, "vote")
    options = settings.options
    voters = VoterIds(settings.keys)
    proxies = TrustedProxies(settings.trusted_proxies)
    templates = Jinja2Templates(directory=HERE / "templates")
    page_headers = page_policy(settings.results_url)

    def current_voter(request: Request, cookie: str) -> str | None:
        """The voter of a genuine cookie; a forged, tampered or expired-key one is ignored."""
        return voters.verify(request.cookies.get(cookie))

    def page(request: Request, status: int = 200, error: str | None = None,
             retry_after: str | None = None) -> Response:
        secure = proxies.peer(request.scope).https
        voter_cookie, choice_cookie = cookie_names(secure)
        voter = current_voter(request, voter_cookie)
        choice = request.cookies.get(choice_cookie)
        if voter is None or choice not in options:
            choice = None
        response = templates.TemplateResponse(request, "vote.html", {
            "options": options.items, "choice": choice, "instance_id": settings.instance_id,
            "error": error, "results_url": settings.results_url,
        }, status_code=status, headers=page_headers)
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        if voter is not None and not voters.is_current(request.cookies[voter_cookie]):
            response.raw_headers.append(set_cookie(voter_cookie, voters.sign(voter), secure))
        return response

    async def show(request: Request) -> Response:
        return page(request)

    async def vote_form(request: Request) -> Response:
        try:
            refuse_cross_site(request)
            peer = proxies.peer(request.scope)
            known = current_voter(request, cookie_names(peer.https)[0])
            event = await cast(request.state.queue, voters, peer,
                               form_vote(await read_body(request, FORM), options), known)
        except BadVote as bad:
            metrics.REJECTED.labels(bad.label).inc()
            return page(request, bad.status, bad.reason)
        except RateLimited as limited:
            metrics.REJECTED.labels("rate_limited").inc()
            return page(request, 429, "You have sent too many votes in a short time. Please "
                        f"wait {limited.retry_after_s} s and try again.",
                        str(limited.retry_after_s))
        except (RedisError, TimeoutError) as error:
            unavailable(error)
            return page(request, 503, "Votes cannot be accepted right now. Please try again "
                        "in a few seconds.", RETRY_AFTER_S)
        response = RedirectResponse("/", status_code=303)
        response.raw_headers += changed_cookies(request, voters, peer, event, known)
        return response

    async def healthz(request: Request) -> Response:
        """vote_fn can do its one job only while Redis answers, so health includes Redis."""
        try:
            async with asyncio.timeout(DEADLINE_S):
                await request.state.redis.ping()
        except (RedisError, TimeoutError) as error:
            return json_response({"status": "unavailable",
                                  "redis": str(error) or "no answer in time"}, 503,
                                 {"Retry-After": RETRY_AFTER_S})
        return json_response({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        redis = open_redis(settings.redis)
        try:
            yield {"redis": redis, "queue": VoteQueue(redis, settings.rate_limit)}
        finally:
            await redis.aclose()

    vote_api = VoteApi(options, voters, proxies)
    return VoteApp(
        vote_api,
        routes=[
            Route("/", show, methods=["GET"]),
            Route("/", vote_form, methods=["POST"]),
            Route(PATH, vote_api, methods=["POST"]),  # VoteApp serves it ahead of the stack
            Route("/healthz", healthz),
            Route("/readyz", healthz),
            observability.metrics_route,
            openapi.route(HERE / "openapi.yaml", options),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[*observability.middleware("vote"),
                    Middleware(SecurityHeaders, proxies=proxies)],
        # A form voter gone mid-body: 499, as on the JSON path (vote_fn/api.py).
        exception_handlers={ClientDisconnect: observability.client_gone},
        lifespan=lifespan,
    )
