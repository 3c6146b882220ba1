"""``POST /api/vote``: casting a vote, and the JSON endpoint, served ahead of the middleware.

This is the one path that takes the audience's load, so it is a plain ASGI endpoint that
vote_fn's app calls before its middleware stack and router (``VoteApp``). It does what
the stack would do, with the same modules: the request id and its log context
(common/observability.py), the security headers (common/headers.py) and the HTTP
metrics (common/http_metrics.py). Measured under wrk (docs/BENCHMARKS.md), a vote through
Starlette's routing, five middleware layers, Request/Response objects and
``http.cookies`` cost ~170 µs of CPU against ~45 µs for a bare Starlette app; most of the
difference was those layers, not the vote.

Every other request (and any other method on this path) goes through the stack as usual.
An unexpected error still gets the API's JSON (a 500 with the request id), and a client
that hangs up before its body arrived gets nothing and is counted as 499, not 500.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

from common import http_metrics, observability
from common.event import VoteEvent
from common.headers import BASE_HEADERS, WITH_HSTS
from common.proxies import Peer, TrustedProxies
from common.settings import Options
from vote_fn import metrics
from vote_fn.ballot import JSON, BadVote, api_vote, read_body
from vote_fn.origin import cross_site_reason
from vote_fn.queue import VoteQueue
from vote_fn.ratelimit import RateLimited
from vote_fn.voter import VoterIds, cookie_names, set_cookie

log = logging.getLogger("vote_fn")
PATH = "/api/vote"
RETRY_AFTER_S = "2"
UNAVAILABLE = "the vote queue is unavailable; retry shortly"
CROSS_SITE = "votes are accepted only from this site's own page"
TOO_MANY = "too many votes from your address; retry after the time in Retry-After"
INTERNAL = "internal error; the request id in X-Request-ID identifies it in the logs"
_JSON_TYPE = (b"content-type", b"application/json")
_REQUEST_ID = observability.REQUEST_ID_HEADER.lower().encode()
RawHeaders = list[tuple[bytes, bytes]]


def refuse_cross_site(request: Request) -> None:
    """Raise BadVote (403) when a browser sent the vote from another site's page."""
    if (reason := cross_site_reason(request.headers)) is not None:
        log.debug("vote refused as cross-site: %s", reason)
        raise BadVote(403, "cross_site", CROSS_SITE)


def unavailable(error: BaseException) -> None:
    metrics.REJECTED.labels("redis_unavailable").inc()
    log.warning("vote not accepted, Redis unavailable: %s", error or "no answer in time")


async def cast(queue: VoteQueue, voters: VoterIds, peer: Peer, option: str, known: str | None,
               vote_id: str | None = None) -> VoteEvent:
    """Queue the vote of voter ``known`` (None: a new voter); returns once Redis holds
    it. Raises RateLimited, TimeoutError or RedisError."""
    voter = known
    if vote_id is not None and voter is None:  # a client retrying a vote reuses its id:
        voter = voters.for_vote(vote_id)  # the same voter each time, so it counts once
    event = VoteEvent.new(voter or VoterIds.new(), option, vote_id)
    await queue.push(event.encode(), peer.address)  # within its deadline (vote_fn/queue.py)
    metrics.ACCEPTED.inc()
    return event


def changed_cookies(request: Request, voters: VoterIds, peer: Peer, event: VoteEvent,
                    known: str | None) -> RawHeaders:
    """The cookies to set after a vote: only those that changed (signing costs real time).
    ``known`` is the voter the request's cookie proved, if any."""
    voter_cookie, choice_cookie = cookie_names(peer.https)
    headers = []
    if known != event.voter or not voters.is_current(request.cookies.get(voter_cookie, "")):
        headers.append(set_cookie(voter_cookie, voters.sign(event.voter), peer.https))
    if request.cookies.get(choice_cookie) != event.option:
        headers.append(set_cookie(choice_cookie, event.option, peer.https))
    return headers


class VoteApi:
    """The JSON vote endpoint: 202 with the receipt once Redis holds the vote; 403, 4xx,
    429 or a 503 within a second otherwise, each with ``{"error": reason}``."""

    def __init__(self, options: Options, voters: VoterIds, proxies: TrustedProxies) -> None:
        self._options = options
        self._voters = voters
        self._proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500  # unless an answer is sent
        try:
            request = Request(scope, receive)
            request_id = observability.bind_request_id(request.headers.get("x-request-id"))
            peer = self._proxies.peer(scope)
            try:
                status, document, headers = await self._vote(request, peer)
            except ClientDisconnect:  # hung up before its body arrived: nobody to answer
                status = observability.CLIENT_CLOSED
                return
            except Exception:  # a bug: still the API's JSON, request id and headers
                log.exception("the vote could not be handled")
                status, document, headers = 500, {"error": INTERNAL}, []
            body = orjson.dumps(document)
            headers += [_JSON_TYPE, (b"content-length", str(len(body)).encode()),
                        *(WITH_HSTS if peer.https else BASE_HEADERS),
                        (_REQUEST_ID, request_id.encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            http_metrics.record("vote", "POST", PATH, status, time.perf_counter() - started)

    async def _vote(self, request: Request, peer: Peer) -> tuple[int, dict[str, Any], RawHeaders]:
        try:
            refuse_cross_site(request)
            known = self._voters.verify(request.cookies.get(cookie_names(peer.https)[0]))
            option, vote_id = api_vote(await read_body(request, JSON), self._options)
            event = await cast(request.state.queue, self._voters, peer, option, known, vote_id)
        except BadVote as bad:
            metrics.REJECTED.labels(bad.label).inc()
            return bad.status, {"error": bad.reason}, []
        except RateLimited as limited:
            metrics.REJECTED.labels("rate_limited").inc()
            return 429, {"error": TOO_MANY}, [(b"retry-after", str(limited.retry_after_s).encode())]
        except (RedisError, TimeoutError) as error:
            unavailable(error)
            return 503, {"error": UNAVAILABLE}, [(b"retry-after", RETRY_AFTER_S.encode())]
        receipt = {"vote_id": event.vote_id, "voter": event.voter, "vote": event.option,
                   "accepted_ms": event.accepted_ms}
        return 202, receipt, changed_cookies(request, self._voters, peer, event, known)
