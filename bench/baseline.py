"""The ingestion baseline: a Starlette app that only awaits the body and returns a fixed
202 JSON, run under the same uvicorn options as vote_fn (``bench.baseline:create_app``)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ACCEPTED = b'{"status":"accepted"}'


async def vote(request: Request) -> Response:
    await request.body()
    return Response(ACCEPTED, 202, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app() -> Starlette:
    return Starlette(routes=[Route("/api/vote", vote, methods=["POST"]),
                             Route("/healthz", healthz)])
