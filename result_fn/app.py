"""result_fn: ``GET /`` results page, ``GET /api/results``, ``GET /stream`` (SSE), receipts.

It reads PostgreSQL only: never Redis.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypedDict

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from common import observability, openapi
from common.database import open_pool
from common.event import is_vote_id, is_voter_id
from common.headers import BASE_HEADERS, WITH_HSTS, SecurityHeaders
from common.logs import configure_logging
from common.proxies import TrustedProxies
from common.runtime import STREAMING_THRESHOLD, tune_gc
from common.schema import read_pipeline, read_tally
from common.settings import exit_on_error
from result_fn import metrics
from result_fn.broadcaster import Broadcaster
from result_fn.clients import StreamsPerClient
from result_fn.pipeline import assess
from result_fn.receipts import receipt_status
from result_fn.results import Results, build_results
from result_fn.settings import ResultSettings
from result_fn.stream import LiveStream

log = logging.getLogger("result_fn")
HERE = Path(__file__).parent
# The page's own policy; common/headers.py adds the other security headers.
PAGE_POLICY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
}


class State(TypedDict):
    pool: AsyncConnectionPool
    broadcaster: Broadcaster


def unavailable(error: Exception) -> JSONResponse:
    log.warning("results unavailable: %s", error)
    return JSONResponse({"error": "the results database is unavailable; retry shortly"}, 503,
                        headers={"Retry-After": "2"})


def stream_headers(request: Request, https: bool) -> dict[str, str]:
    """What the middleware stack would add to a stream: a request id and the security
    headers (common/headers.py)."""
    headers = {observability.REQUEST_ID_HEADER:
               observability.bind_request_id(request.headers.get("x-request-id"))}
    for name, value in WITH_HSTS if https else BASE_HEADERS:
        headers[name.decode()] = value.decode()
    return headers


class ResultApp(Starlette):
    """Serves an admitted ``GET /stream`` ahead of the middleware stack; every other
    request, and a stream to refuse, goes through the stack as usual.

    Each middleware wraps ``send``, and a stream calls ``send`` once per event: with 5,000
    subscribers and 10 changes a second, 50,000 calls a second through each wrapper. The
    stream sets the headers the stack would have set itself (``stream_headers``); the
    HTTP metrics leave streams out anyway (their duration is the stream's lifetime) and
    result_fn/metrics.py counts them.
    """

    def __init__(self, admit: Callable[[Request], Response | None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._admit = admit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/stream" and scope["method"] == "GET":
            scope["app"] = self
            response = self._admit(Request(scope, receive))
            if response is not None:
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: ResultSettings | None = None) -> Starlette:
    settings = settings or exit_on_error(ResultSettings.from_env)
    configure_logging(settings.log_format, "result")
    templates = Jinja2Templates(directory=HERE / "templates")
    proxies = TrustedProxies(settings.trusted_proxies)
    streams_per_client = StreamsPerClient(settings.max_streams_per_client)

    async def current(request: Request) -> Results:
        pool: AsyncConnectionPool = request.state.pool
        async with pool.connection(timeout=1.0) as conn:
            tally = await read_tally(conn)
            pipeline = assess(await read_pipeline(conn), settings.stall_s)
        return build_results(tally, settings.options, pipeline)

    async def page(request: Request) -> Response:
        try:
            results: Results | None = await current(request)
        except (psycopg.Error, LookupError) as error:
            log.warning("results page rendered without figures: %s", error)
            results = None
        return templates.TemplateResponse(request, "results.html", {
            "options": settings.options.items, "results": results and results.document,
        }, headers=PAGE_POLICY)

    async def api_results(request: Request) -> Response:
        try:
            results = await current(request)
        except (psycopg.Error, LookupError) as error:
            return unavailable(error)
        return Response(results.json, media_type="application/json")

    async def receipt(request: Request) -> Response:
        vote_id = request.path_params["vote_id"]
        voter = request.query_params.get("voter", "")
        ts = request.query_params.get("ts", "")
        cors = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
        if not (is_vote_id(vote_id) and is_voter_id(voter) and ts.isascii() and ts.isdigit()
                and len(ts) < 16):
            return JSONResponse({"error": "ask as /api/receipts/<vote_id>?voter=<voter>&ts="
                                 "<accepted_ms>, with the values from the vote's answer"}, 400,
                                headers=cors)
        try:
            pool: AsyncConnectionPool = request.state.pool
            async with pool.connection(timeout=1.0) as conn:
                status = await receipt_status(conn, vote_id, voter, int(ts))
        except psycopg.Error as error:
            return unavailable(error)
        return JSONResponse({"vote_id": vote_id, "status": status.value}, headers=cors)

    def admit(request: Request) -> Response | None:
        """The live stream, if this process and this client may open one more, else None."""
        broadcaster: Broadcaster = request.state.broadcaster
        if broadcaster.subscriber_count >= settings.max_subscribers:
            return None
        peer = proxies.peer(request.scope)
        if not streams_per_client.take(peer.address):
            return None
        # The first event is the full current state, whatever Last-Event-ID says: the
        # header is never read, so no value of it can change what is sent.
        return LiveStream(broadcaster, broadcaster.subscribe(), settings.stream_lifetime_s,
                          stream_headers(request, peer.https),
                          on_close=lambda: streams_per_client.give_back(peer.address))

    async def stream(request: Request) -> Response:
        """A stream through the middleware stack: normally only the refusals (see
        ResultApp), or a stream admitted after all because a slot just freed."""
        if (live := admit(request)) is not None:
            return live
        broadcaster: Broadcaster = request.state.broadcaster
        if broadcaster.subscriber_count >= settings.max_subscribers:
            metrics.REFUSED.labels("process_full").inc()
            return JSONResponse({"error": "too many live viewers on this instance; retry"}, 503,
                                headers={"Retry-After": "5"})
        metrics.REFUSED.labels("client_full").inc()
        return JSONResponse({"error": "too many live streams from your address; close "
                             "another results page or retry later"}, 429,
                            headers={"Retry-After": "30"})

    async def healthz(request: Request) -> Response:
        """Alive and following changes: the LISTEN connection is up."""
        broadcaster: Broadcaster = request.state.broadcaster
        if not broadcaster.listening:
            return JSONResponse({"status": "unavailable",
                                 "postgres": "not listening for changes"}, 503)
        return JSONResponse({"status": "ok", "subscribers": broadcaster.subscriber_count})

    async def readyz(request: Request) -> Response:
        """Ready: PostgreSQL answers a query and the LISTEN connection is up."""
        broadcaster: Broadcaster = request.state.broadcaster
        try:
            pool: AsyncConnectionPool = request.state.pool
            async with pool.connection(timeout=1.0) as conn:
                await conn.execute("SELECT 1")
        except psycopg.Error as error:
            return JSONResponse({"status": "unavailable", "postgres": str(error)}, 503,
                                headers={"Retry-After": "2"})
        if not broadcaster.listening:
            return JSONResponse({"status": "unavailable",
                                 "postgres": "not listening for changes"}, 503)
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with open_pool(settings.database_url, max_size=4) as pool:
            broadcaster = Broadcaster(settings.database_url, pool, settings.options,
                                      poll_s=settings.poll_s, ping_s=settings.stream_ping_s,
                                      retry_ms=settings.stream_retry_ms,
                                      stall_s=settings.stall_s)
            metrics.SUBSCRIBERS.set_function(lambda: broadcaster.subscriber_count)
            tune_gc(STREAMING_THRESHOLD)
            async with anyio.create_task_group() as group:
                group.start_soon(broadcaster.run)
                yield {"pool": pool, "broadcaster": broadcaster}
                group.cancel_scope.cancel()

    return ResultApp(
        admit,
        routes=[
            Route("/", page),
            Route("/api/results", api_results),
            Route("/api/receipts/{vote_id}", receipt),
            Route("/stream", stream),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            observability.metrics_route,
            openapi.route(HERE / "openapi.yaml", settings.options),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        # /stream is left out of the HTTP metrics: its duration is the stream's lifetime
        middleware=[*observability.middleware("result", unmeasured=("/stream",)),
                    Middleware(SecurityHeaders, proxies=proxies)],
        lifespan=lifespan,
    )
