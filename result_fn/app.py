"""result_fn: ``GET /`` the results page and ``GET /present`` the projector screen, ``GET
/api/results`` and ``GET /stream`` (SSE, served by the edge ahead of Starlette's stack:
common/edge.py) for the poll shown (the open one, else the last one opened), ``GET
/api/polls/<id>/results`` (and ``.csv``) for any poll, receipts, and ``GET /join.svg``, the
QR code of the vote page (result_fn/join.py).

It reads PostgreSQL only, never Redis, and never changes the schema (the worker does).
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypedDict

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from common import http_metrics, openapi
from common.assets import Pages
from common.database import open_pool
from common.edge import Direct, FunctionApp, json_answer
from common.event import is_vote_id, is_voter_id, now_ms
from common.logs import configure_logging
from common.polls import is_poll_id
from common.proxies import TrustedProxies, peer_of
from common.refusals import Refused
from common.runtime import STREAMING_THRESHOLD, tune_gc
from common.schema import SchemaMissing
from common.settings import exit_on_error
from result_fn import metrics
from result_fn.broadcaster import Broadcaster
from result_fn.clients import StreamsPerClient
from result_fn.join import PATH as JOIN_PATH
from result_fn.join import JoinCode, join_svg
from result_fn.reader import NoSuchPoll, Reader
from result_fn.receipts import receipt_status
from result_fn.refusals import (
    bad_receipt_query,
    client_full,
    no_such_poll,
    process_full,
    unreadable,
)
from result_fn.results import Results
from result_fn.settings import ResultSettings
from result_fn.stream import LiveStream

HERE = Path(__file__).parent
PAGES = Pages(HERE)  # its templates and static files
NAME = "result_fn"  # in logs, metrics and pg_stat_activity
# The page's own policy; the edge adds the other security headers.
PAGE_POLICY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
}
# Receipts are followed from the vote page, another origin.
RECEIPT_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}


class State(TypedDict):
    settings: ResultSettings
    reader: Reader
    broadcaster: Broadcaster
    streams_per_client: StreamsPerClient
    templates: Jinja2Templates
    join: JoinCode


async def read(request: Request, poll_id: str | None = None) -> Results:
    """The results of a poll (by default the one shown); raises Refused."""
    reader: Reader = request.state.reader
    try:
        return await reader.results(poll_id)
    except NoSuchPoll:
        raise no_such_poll(poll_id) from None
    except (psycopg.Error, SchemaMissing) as error:
        raise unreadable(error) from None


async def page(request: Request, template: str) -> Response:
    """A page of the poll shown; when it cannot be read, the page says why in place of the
    figures. ``now_ms`` gives the page the server's clock, for the ages it shows."""
    templates: Jinja2Templates = request.state.templates
    results: Results | None = None
    problem = None
    try:
        results = await read(request)
    except Refused as refused:
        problem = refused.reason
    return templates.TemplateResponse(request, template, {
        "results": results and results.document, "problem": problem,
        "join": request.state.join, "now_ms": now_ms(),
        "base": request.scope.get("root_path", ""),
    }, headers=PAGE_POLICY)


async def results_page(request: Request) -> Response:
    """The results, with the operator's panel (is the pipeline moving?)."""
    return await page(request, "results.html")


async def present(request: Request) -> Response:
    """The projector screen: large enough to read from the back of a room, no panel."""
    return await page(request, "present.html")


async def api_results(request: Request) -> Response:
    try:
        results = await read(request, request.path_params.get("poll"))
    except Refused as refused:
        return refused.as_json()
    return Response(results.json, media_type="application/json")


async def csv_results(request: Request) -> Response:
    """A poll's figures as CSV: ``option_id,label,votes,percent``, then the total."""
    poll = request.path_params["poll"]
    try:
        results = await read(request, poll)
    except Refused as refused:
        return refused.as_json()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["option_id", "label", "votes", "percent"])
    for option in results.document["options"]:  # type: ignore[attr-defined]
        writer.writerow([option["id"], option["label"], _cell(option["votes"]),
                         _cell(option["percent"])])
    writer.writerow(["total", "", results.document["total"], 100.0 if
                     results.document["total"] else 0.0])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="poll-{poll}-results.csv"'})


def _cell(value: object) -> object:
    return "" if value is None else value


async def receipt(request: Request) -> Response:
    vote_id = request.path_params["vote_id"]
    voter = request.query_params.get("voter", "")
    ts = request.query_params.get("ts", "")
    poll = request.query_params.get("poll")  # the poll voted in, when the page says it
    if not (is_vote_id(vote_id) and is_voter_id(voter) and ts.isascii() and ts.isdigit()
            and len(ts) < 16 and (poll is None or is_poll_id(poll))):
        return bad_receipt_query().as_json(RECEIPT_HEADERS)
    reader: Reader = request.state.reader
    try:
        async with reader.pool.connection(timeout=1.0) as conn:
            status = await receipt_status(conn, vote_id, voter, int(ts), poll)
    except psycopg.Error as error:
        return unreadable(error).as_json(RECEIPT_HEADERS)
    return json_answer({"vote_id": vote_id, "status": status.value}, 200, RECEIPT_HEADERS)


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """The live results, if this process and this client may hold one more stream."""
    state = Request(scope).state
    settings: ResultSettings = state.settings
    broadcaster: Broadcaster = state.broadcaster
    per_client: StreamsPerClient = state.streams_per_client
    client = peer_of(scope).address
    try:
        if broadcaster.subscriber_count >= settings.max_subscribers:
            raise process_full()
        if not per_client.take(client):
            raise client_full()
    except Refused as refused:
        metrics.REFUSED.labels(refused.label).inc()
        await refused.as_json()(scope, receive, send)
        return
    # The first event is the full current state, whatever Last-Event-ID says: the header
    # is never read, so no value of it can change what is sent.
    live = LiveStream(broadcaster, broadcaster.subscribe(), settings.stream_lifetime_s,
                      on_close=lambda: per_client.give_back(client))
    await live(scope, receive, send)


NOT_FOLLOWING = {"status": "unavailable", "postgres": "not following result changes"}


async def healthz(request: Request) -> Response:
    """Alive and following changes (its LISTEN connection is up, or its last poll worked)."""
    broadcaster: Broadcaster = request.state.broadcaster
    if not broadcaster.following:
        return json_answer(NOT_FOLLOWING, 503)
    return json_answer({"status": "ok", "subscribers": broadcaster.subscriber_count}, 200)


async def readyz(request: Request) -> Response:
    """Ready: PostgreSQL answers a query, and changes reach this process."""
    reader: Reader = request.state.reader
    broadcaster: Broadcaster = request.state.broadcaster
    try:
        async with reader.pool.connection(timeout=1.0) as conn:
            await conn.execute("SELECT 1")
    except psycopg.Error as error:
        return json_answer({"status": "unavailable", "postgres": str(error)}, 503,
                           {"Retry-After": "2"})
    if not broadcaster.following:
        return json_answer(NOT_FOLLOWING, 503)
    return json_answer({"status": "ok"}, 200)


def create_app(settings: ResultSettings | None = None) -> Starlette:
    settings = settings or exit_on_error(ResultSettings.from_env)
    configure_logging(settings.log_format, "result")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        pool_size = max(1, settings.max_connections - settings.listens)
        async with open_pool(settings.database_url, max_size=pool_size, name=NAME) as pool:
            reader = Reader(pool, settings.stall_s)
            async with Broadcaster(
                    reader, listen_url=settings.database_url if settings.listens else None,
                    name=NAME,
                    poll_s=settings.poll_s, ping_s=settings.stream_ping_s,
                    retry_ms=settings.stream_retry_ms,
                    max_events_per_s=settings.max_events_per_s) as broadcaster:
                metrics.SUBSCRIBERS.set_function(lambda: broadcaster.subscriber_count)
                tune_gc(STREAMING_THRESHOLD)
                yield {"settings": settings, "reader": reader, "broadcaster": broadcaster,
                       "streams_per_client": StreamsPerClient(settings.max_streams_per_client),
                       "templates": PAGES.templates,
                       "join": JoinCode(settings.vote_url)}

    return FunctionApp(
        "result",
        routes=[
            Route("/", results_page),
            Route("/present", present),
            Route(JOIN_PATH, join_svg),
            Route("/api/results", api_results),
            Route("/api/polls/{poll}/results", api_results),
            Route("/api/polls/{poll}/results.csv", csv_results),
            Route("/api/receipts/{vote_id}", receipt),
            Direct("/stream", stream, methods=["GET"], measured=False),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            http_metrics.metrics_route,
            openapi.route(HERE / "openapi.yaml"),
            PAGES.route,
        ],
        lifespan=lifespan,
        proxies=TrustedProxies(settings.trusted_proxies),
    )
