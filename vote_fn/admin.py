"""The presenter's API: create polls, open one (closing the one open before), close it.

Off unless ADMIN_TOKEN is set (then 404 says how to turn it on); every call needs
``Authorization: Bearer <ADMIN_TOKEN>``. The worker records each action in the audit log
when it reaches PostgreSQL through the queue (vote_fn/polls.py).

- ``POST /api/admin/polls`` with ``{"question", "options": [{"id", "label"}, ...],
  "results": "live" | "after_close"}``: 201 with the poll, closed, and its new id;
- ``POST /api/admin/polls/<id>/open`` and ``.../close``: 200 with ``{"poll", "open"}``.
"""

from __future__ import annotations

import hmac
import logging

import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from common.edge import json_answer
from common.polls import poll_from_dict
from common.proxies import peer_of
from common.refusals import Refused
from vote_fn.polls import PollBook, UnknownPoll
from vote_fn.refusals import RETRY_UNAVAILABLE_S
from vote_fn.settings import VoteSettings

log = logging.getLogger("vote_fn.admin")
MAX_BODY_BYTES = 16 * 1024


def admin_off() -> Refused:
    """The answer of the API and of the admin page while ADMIN_TOKEN is unset."""
    return Refused(404, "admin_off", "admin is off: set ADMIN_TOKEN to turn it on")


def _admitted(request: Request) -> str:
    """The actor the audit log names; raises Refused unless the token is right."""
    settings: VoteSettings = request.state.settings
    if settings.admin_token is None:
        raise admin_off()
    sent = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
    if not hmac.compare_digest(sent, settings.admin_token.encode()):
        raise Refused(401, "admin_token", "wrong or missing admin token: send Authorization: "
                      "Bearer <ADMIN_TOKEN>", headers=[(b"www-authenticate", b"Bearer")])
    return f"admin@{peer_of(request.scope).address}"


def _unavailable(error: RedisError) -> Refused:
    log.warning("admin action not done, Redis unavailable: %s", error)
    return Refused(503, "redis_unavailable", "the poll store is unavailable: try again in a "
                   "few seconds", RETRY_UNAVAILABLE_S)


async def create_poll(request: Request) -> Response:
    book: PollBook = request.state.polls
    try:
        actor = _admitted(request)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise Refused(415, "content_type", "send the poll as application/json")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        try:
            document = orjson.loads(body)
            if type(document) is not dict:
                raise ValueError('send {"question", "options": [{"id", "label"}], "results"}')
            poll = poll_from_dict("new", document)
        except ValueError as error:  # orjson's decode error is one too
            raise Refused(422, "bad_poll", str(error)) from None
        try:
            created = await book.create(poll, actor)
        except RedisError as error:
            raise _unavailable(error) from None
    except Refused as refused:
        return refused.as_json()
    log.info("poll %s created by %s", created.id, actor)
    return json_answer({**created.as_dict(), "open": False}, 201)


async def open_poll(request: Request) -> Response:
    return await _change(request, opening=True)


async def close_poll(request: Request) -> Response:
    return await _change(request, opening=False)


async def _change(request: Request, *, opening: bool) -> Response:
    book: PollBook = request.state.polls
    poll_id = request.path_params["poll"]
    try:
        actor = _admitted(request)
        try:
            await (book.open_poll if opening else book.close_poll)(poll_id, actor)
        except UnknownPoll:
            raise Refused(404, "no_such_poll", f"there is no poll {poll_id[:40]!r}") from None
        except RedisError as error:
            raise _unavailable(error) from None
    except Refused as refused:
        return refused.as_json()
    log.info("poll %s %s by %s", poll_id, "opened" if opening else "closed", actor)
    return json_answer({"poll": poll_id, "open": opening}, 200)


async def current_poll(request: Request) -> Response:
    """``GET /api/poll``: the open poll (``"open": false`` when none is), for the page to
    follow; as fresh as vote_fn's copy (vote_fn/polls.py)."""
    book: PollBook = request.state.polls
    poll = book.open
    document = {**poll.as_dict(), "open": True} if poll else {"open": False}
    return json_answer(document, 200, {"Cache-Control": "no-store"})
