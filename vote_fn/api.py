"""``POST /api/vote``: the JSON vote endpoint, the one path that takes an audience's load.

It is a plain ASGI endpoint that the edge serves ahead of Starlette's stack (common/edge.py:
the edge still gives it the request id, the security headers and the metrics). 202 with the
receipt once Redis holds the vote; otherwise the refusal's status with ``{"error": reason}``
(vote_fn/refusals.py).
"""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope, Send

from common.refusals import Refused
from vote_fn.ballot import JSON, api_vote
from vote_fn.casting import Voting

PATH = "/api/vote"
_JSON_TYPE = (b"content-type", b"application/json")


async def vote_api(scope: Scope, receive: Receive, send: Send) -> None:
    voting: Voting = scope["state"]["voting"]  # the lifespan's state, as request.state reads it
    try:
        cast = await voting.cast(scope, receive, JSON, api_vote)
    except Refused as refused:
        await refused.as_json()(scope, receive, send)
        return
    # Written out rather than through a Response object: a few µs of every vote.
    body = orjson.dumps(cast.receipt)
    headers = [*cast.cookies, _JSON_TYPE, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": body})
