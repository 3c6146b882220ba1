"""vote_fn: ``GET /`` vote page, ``POST /`` form vote, ``POST /api/vote`` JSON vote.

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
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from common import observability, openapi
from common.event import VoteEvent
from common.headers import SecurityHeaders
from common.logs import configure_logging
from common.proxies import Peer, TrustedProxies
from common.redis_client import RedisClient, open_redis
from common.settings import exit_on_error
from vote_fn import metrics
from vote_fn.ballot import FORM, JSON, BadVote, api_vote, form_vote, read_body
from vote_fn.origin import cross_site_reason
from vote_fn.queue import VoteQueue
from vote_fn.ratelimit import RateLimited
from vote_fn.settings import VoteSettings
from vote_fn.voter import MAX_AGE_S, VoterIds, cookie_names

log = logging.getLogger("vote_fn")
HERE = Path(__file__).parent
RETRY_AFTER_S = "2"
REDIS_DEADLINE_S = 0.5  # a push or ping not done by then is answered 503 (the promise: < 1 s)
UNAVAILABLE = "the vote queue is unavailable; retry shortly"
CROSS_SITE = "votes are accepted only from this site's own page"
TOO_MANY = "too many votes from your address; retry after the time in Retry-After"


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


def unavailable(error: BaseException) -> None:
    metrics.REJECTED.labels("redis_unavailable").inc()
    log.warning("vote not accepted, Redis unavailable: %s", error or "no answer in time")


def refuse_cross_site(request: Request) -> None:
    """Raise BadVote (403) when a browser sent the vote from another site's page."""
    if (reason := cross_site_reason(request.headers)) is not None:
        log.debug("vote refused as cross-site: %s", reason)
        raise BadVote(403, "cross_site", CROSS_SITE)


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

    def keep(response: Response, name: str, value: str, secure: bool) -> None:
        response.set_cookie(name, value, max_age=MAX_AGE_S, httponly=True, samesite="lax",
                            secure=secure)

    def remember(response: Response, request: Request, peer: Peer, event: VoteEvent,
                 known: str | None) -> None:
        """Set the cookies that changed (signing and cookie formatting cost real time);
        ``known`` is the voter the request's cookie proved, if any."""
        voter_cookie, choice_cookie = cookie_names(peer.https)
        if known != event.voter or not voters.is_current(request.cookies.get(voter_cookie, "")):
            keep(response, voter_cookie, voters.sign(event.voter), peer.https)
        if request.cookies.get(choice_cookie) != event.option:
            keep(response, choice_cookie, event.option, peer.https)

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
            keep(response, voter_cookie, voters.sign(voter), secure)
        return response

    async def cast(request: Request, peer: Peer, option: str, known: str | None,
                   vote_id: str | None = None) -> VoteEvent:
        """Queue the vote of voter ``known`` (None: a new voter); returns once Redis holds
        it. Raises RateLimited, TimeoutError or RedisError."""
        voter = known
        event = VoteEvent.new("", option)
        if vote_id is not None:  # a client retrying a vote reuses its id: counted once
            voter = voter or voters.for_vote(vote_id)
            event = event._replace(vote_id=vote_id)
        event = event._replace(voter=voter or VoterIds.new())
        queue: VoteQueue = request.state.queue
        async with asyncio.timeout(REDIS_DEADLINE_S):  # cheaper than an anyio cancel scope
            await queue.push(event.encode(), peer.address)
        metrics.ACCEPTED.inc()
        return event

    async def show(request: Request) -> Response:
        return page(request)

    async def vote_form(request: Request) -> Response:
        try:
            refuse_cross_site(request)
            peer = proxies.peer(request.scope)
            known = current_voter(request, cookie_names(peer.https)[0])
            event = await cast(request, peer, form_vote(await read_body(request, FORM), options),
                               known)
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
        remember(response, request, peer, event, known)
        return response

    async def vote_api(request: Request) -> Response:
        try:
            refuse_cross_site(request)
            peer = proxies.peer(request.scope)
            known = current_voter(request, cookie_names(peer.https)[0])
            option, vote_id = api_vote(await read_body(request, JSON), options)
            event = await cast(request, peer, option, known, vote_id)
        except BadVote as bad:
            metrics.REJECTED.labels(bad.label).inc()
            return json_response({"error": bad.reason}, bad.status)
        except RateLimited as limited:
            metrics.REJECTED.labels("rate_limited").inc()
            return json_response({"error": TOO_MANY}, 429,
                                 {"Retry-After": str(limited.retry_after_s)})
        except (RedisError, TimeoutError) as error:
            unavailable(error)
            return json_response({"error": UNAVAILABLE}, 503, {"Retry-After": RETRY_AFTER_S})
        response = json_response({"vote_id": event.vote_id, "voter": event.voter,
                                  "vote": event.option, "accepted_ms": event.accepted_ms}, 202)
        remember(response, request, peer, event, known)
        return response

    async def healthz(request: Request) -> Response:
        """vote_fn can do its one job only while Redis answers, so health includes Redis."""
        try:
            async with asyncio.timeout(REDIS_DEADLINE_S):
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

    return Starlette(
        routes=[
            Route("/", show, methods=["GET"]),
            Route("/", vote_form, methods=["POST"]),
            Route("/api/vote", vote_api, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", healthz),
            observability.metrics_route,
            openapi.route(HERE / "openapi.yaml", options),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[*observability.middleware("vote"),
                    Middleware(SecurityHeaders, proxies=proxies)],
        lifespan=lifespan,
    )
