"""vote_fn: ``GET /`` vote page, ``POST /`` form vote, ``POST /api/vote`` JSON vote, ``/healthz``."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypedDict
from urllib.parse import parse_qs

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from common.event import VoteEvent, is_vote_id
from common.redis_client import RedisClient, open_redis
from common.logs import configure_logging
from common.settings import exit_on_error
from vote_fn.queue import VoteQueue
from vote_fn.settings import VoteSettings
from vote_fn.voter import CHOICE_COOKIE, COOKIE, MAX_AGE_S, VoterIds

log = logging.getLogger("vote_fn")
HERE = Path(__file__).parent
MAX_BODY_BYTES = 1024
RETRY_AFTER_S = "2"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class State(TypedDict):
    redis: RedisClient
    queue: VoteQueue


class BadVote(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def create_app(settings: VoteSettings | None = None) -> Starlette:
    configure_logging()
    settings = settings or exit_on_error(VoteSettings.from_env)
    options = settings.options
    voters = VoterIds(settings.secret)
    templates = Jinja2Templates(directory=HERE / "templates")

    def current_voter(request: Request) -> str | None:
        return voters.verify(request.cookies.get(COOKIE))

    def remember(response: Response, request: Request, voter: str, choice: str) -> None:
        secure = request.url.scheme == "https"
        for name, value in ((COOKIE, voters.sign(voter)), (CHOICE_COOKIE, choice)):
            response.set_cookie(name, value, max_age=MAX_AGE_S, httponly=True, samesite="lax",
                                secure=secure)

    def page(request: Request, status: int = 200, error: str | None = None) -> Response:
        choice = request.cookies.get(CHOICE_COOKIE)
        if current_voter(request) is None or choice not in options:
            choice = None
        response = templates.TemplateResponse(request, "vote.html", {
            "options": options.items, "choice": choice, "instance_id": settings.instance_id,
            "error": error,
        }, status_code=status, headers=SECURITY_HEADERS)
        if status == 503:
            response.headers["Retry-After"] = RETRY_AFTER_S
        return response

    async def read_body(request: Request, content_type: str) -> bytes:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != content_type:
            raise BadVote(415, f"send the vote as {content_type}")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BadVote(413, f"the body is over {MAX_BODY_BYTES} bytes")
        return body

    def checked_option(value: object) -> str:
        if not isinstance(value, str) or value not in options:
            raise BadVote(422, f"unknown option: choose one of {', '.join(options.ids)}")
        return value

    async def cast(request: Request, option: str, vote_id: str | None = None) -> VoteEvent:
        voter = current_voter(request) or VoterIds.new()
        event = VoteEvent.new(voter, option)
        if vote_id is not None:  # a client retrying a vote reuses its id: counted once
            event = VoteEvent(vote_id, voter, option, event.accepted_ms)
        queue: VoteQueue = request.state.queue
        await queue.push(event.encode())
        return event

    async def show(request: Request) -> Response:
        return page(request)

    async def vote_form(request: Request) -> Response:
        try:
            body = await read_body(request, "application/x-www-form-urlencoded")
            try:
                fields = parse_qs(body.decode(), strict_parsing=True, max_num_fields=4)
            except (UnicodeDecodeError, ValueError):
                raise BadVote(400, "the form is malformed") from None
            values = fields.get("vote", [])
            if len(values) != 1:
                raise BadVote(400, "send exactly one vote field")
            event = await cast(request, checked_option(values[0]))
        except BadVote as bad:
            return page(request, bad.status, bad.reason)
        except RedisError as error:
            log.warning("vote not accepted, Redis unavailable: %s", error)
            return page(request, 503, "Votes cannot be accepted right now. Please try again "
                        "in a few seconds.")
        response = RedirectResponse("/", status_code=303)
        remember(response, request, event.voter, event.option)
        return response

    async def vote_api(request: Request) -> Response:
        try:
            body = await read_body(request, "application/json")
            try:
                document = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                raise BadVote(400, "the body is not valid JSON") from None
            if not isinstance(document, dict):
                raise BadVote(400, 'send a JSON object such as {"vote": "cats"}')
            vote_id = document.get("vote_id")
            if vote_id is not None and not is_vote_id(vote_id):
                raise BadVote(422, "vote_id must be 32 lower-case hex digits")
            event = await cast(request, checked_option(document.get("vote")), vote_id)
        except BadVote as bad:
            return JSONResponse({"error": bad.reason}, bad.status)
        except RedisError as error:
            log.warning("vote not accepted, Redis unavailable: %s", error)
            return JSONResponse({"error": "the vote queue is unavailable; retry shortly"}, 503,
                                headers={"Retry-After": RETRY_AFTER_S})
        response = JSONResponse({"vote_id": event.vote_id, "voter": event.voter,
                                 "vote": event.option, "accepted_ms": event.accepted_ms}, 202)
        remember(response, request, event.voter, event.option)
        return response

    async def healthz(request: Request) -> Response:
        try:
            await request.state.redis.ping()
        except RedisError as error:
            return JSONResponse({"status": "unavailable", "redis": str(error)}, 503,
                                headers={"Retry-After": RETRY_AFTER_S})
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        redis = open_redis(settings.redis)
        try:
            yield {"redis": redis, "queue": VoteQueue(redis)}
        finally:
            await redis.aclose()

    return Starlette(
        routes=[
            Route("/", show, methods=["GET"]),
            Route("/", vote_form, methods=["POST"]),
            Route("/api/vote", vote_api, methods=["POST"]),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        lifespan=lifespan,
    )
