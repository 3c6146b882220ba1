"""The HTTP edge of every function: one layer in front of its Starlette app.

Every request gets from here, whichever way it is then served:
- a request id: the caller's ``X-Request-ID`` when it is a UUID, else a new one; bound to the
  request's log lines (asgi-correlation-id's context variable, read by its log filter in
  common/logs.py) and sent back on the answer;
- the client and scheme as seen through the trusted proxies (common/proxies.py), written into
  the scope as uvicorn's proxy-headers middleware does: handlers read ``scope["client"]``;
- the security headers (common/headers.py);
- the HTTP metrics (common/http_metrics.py), labelled by the route template that matched;
- the answer to a failure: a client gone before its body arrived is counted as 499 and gets
  no traceback; any other exception is logged with its traceback and answered 500 with the
  request id;
- through the stack only, compression (Starlette's GZipMiddleware) of pages, static files and
  JSON for a client that accepts it; never the stream, which is served ahead of the stack.

Routes made with ``Direct`` are the paths an audience loads (casting a vote, the live
stream). The edge serves them itself: it matches them with Starlette's own
``Route.matches`` and calls their ASGI endpoint, ahead of Starlette's exception handling
and router (~170 µs of CPU per vote through a full stack against ~45 µs for a bare app,
docs/BENCHMARKS.md). Deliberate divergences from a stack of Starlette middleware:

1. The edge wraps Starlette's ServerErrorMiddleware instead of sitting inside it
   (``FunctionApp.build_middleware_stack``), so a 500 carries the request id and the
   security headers too.
2. One ``send`` wrapper per request does the headers and the status for the metrics. It is
   a plain function returning the inner ``send``'s awaitable, not a coroutine: a stream calls
   it once per event, 50,000 times a second at 5,000 viewers and 10 changes a second.
3. A ``Direct`` endpoint gets no HTTPException handling: it answers its refusals itself.
4. asgi-correlation-id's middleware is not used, only its context variable and log filter:
   the middleware would wrap ``send`` a second time.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

import orjson
from asgi_correlation_id import correlation_id
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from common import http_metrics
from common.headers import add_security_headers
from common.proxies import TrustedProxies

REQUEST_ID_HEADER = "X-Request-ID"
CLIENT_CLOSED = 499  # the metrics' status for a client gone mid-request (nginx's code)
# Probes and scrapes would drown the figures; a stream's duration is its whole life.
UNMEASURED = frozenset({"/metrics", "/healthz", "/readyz"})
INTERNAL = "internal error; the request id in X-Request-ID identifies it in the logs"
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
log = logging.getLogger("common.edge")

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class Direct(Route):
    """A route the edge serves ahead of Starlette's stack; its endpoint is an ASGI app.

    ``measured=False`` leaves it out of the HTTP metrics (a stream, whose duration is its
    lifetime, is counted by its function's own metrics)."""

    def __init__(self, path: str, endpoint: ASGIApp, *, methods: Collection[str],
                 measured: bool = True) -> None:
        super().__init__(path, endpoint, methods=list(methods))
        self.app = endpoint  # Route would wrap a function as a request-response endpoint
        self.measured = measured


def new_request_id() -> str:
    """32 random hex digits, the shape of ``uuid4().hex``. A request id need not be
    unguessable, only unique: Python's generator makes one in well under a µs, where each
    read of the operating system's random source is a system call (~4 µs of every vote)."""
    return f"{random.getrandbits(128):032x}"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def bind_request_id(scope: Scope) -> str:
    """The request's id: the caller's, when it is a UUID, else a new one; bound to the log
    lines of whatever runs for this request from here on."""
    sent = _header(scope, _REQUEST_ID)
    value = sent.decode("latin-1") if sent else ""
    if not value:
        value = new_request_id()
    elif len(value) > 64 or not _is_uuid(value):
        value = new_request_id()
        log.warning("request id replaced by %s: the X-Request-ID sent is not a UUID", value)
    correlation_id.set(value)
    return value


def json_answer(document: Mapping[str, object], status: int,
                headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(document), status, headers, media_type="application/json")


async def client_gone(request: Request, error: Exception) -> Response:
    """The client hung up before its body arrived: nobody reads this answer; counted as 499,
    not as a server error, with no traceback."""
    return Response(status_code=CLIENT_CLOSED)


async def internal_error(request: Request, error: Exception) -> Response:
    """A bug: logged with its traceback; the answer names the request id to look for."""
    log.error("unexpected error answering %s %s", request.method, request.url.path,
              exc_info=error)
    return json_answer({"error": INTERNAL}, 500)


# Starlette's exception handlers for the stack; the edge calls the same for Direct routes.
ERROR_HANDLERS: dict[Any, ExceptionHandler] = {ClientDisconnect: client_gone,
                                              Exception: internal_error}


class Edge:
    def __init__(self, app: ASGIApp, *, function: str, routes: Sequence[BaseRoute],
                 proxies: TrustedProxies) -> None:
        self._app = app
        self._function = function
        self._direct = [route for route in routes if isinstance(route, Direct)]
        self._proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = bind_request_id(scope).encode()
        https = self._proxies.resolve(scope)
        status = 0  # no answer yet

        def send_at_edge(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = add_security_headers(
                    [*message.get("headers", ()), (_REQUEST_ID, request_id)], https)
            return send(message)

        route = self._direct_route(scope)
        try:
            if route is None:
                await self._app(scope, receive, send_at_edge)
            else:
                await route.handle(scope, receive, send_at_edge)
        except Exception as error:
            # Through the stack, Starlette's error middleware has called internal_error and
            # answered already; it raises again only so that a server may log it.
            if route is not None:
                handler = client_gone if isinstance(error, ClientDisconnect) else internal_error
                response = await handler(Request(scope, receive), error)
                if not status:
                    await response(scope, receive, send_at_edge)
        finally:
            matched = scope.get("route")
            path = getattr(matched, "path", http_metrics.UNMATCHED)
            if path not in UNMEASURED and getattr(matched, "measured", True):
                http_metrics.record(self._function, scope["method"], path, status or 500,
                                    time.perf_counter() - started)

    def _direct_route(self, scope: Scope) -> Direct | None:
        for route in self._direct:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:  # as Starlette's router does
                scope["route"] = route
                scope.update(child_scope)
                return route
        return None


class FunctionApp(Starlette):
    """A function's ASGI app: Starlette's routing, error handling and lifespan, behind the
    edge. Every function is one of these, so every route of every function gets the edge."""

    def __init__(self, function: str, *, routes: Sequence[BaseRoute], lifespan: Lifespan[Any],
                 proxies: TrustedProxies) -> None:
        super().__init__(routes=routes, lifespan=lifespan, exception_handlers=ERROR_HANDLERS,
                         middleware=[Middleware(GZipMiddleware)])
        self.function = function
        self._proxies = proxies

    def build_middleware_stack(self) -> ASGIApp:
        return Edge(super().build_middleware_stack(), function=self.function,
                    routes=self.routes, proxies=self._proxies)
