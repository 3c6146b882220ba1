"""Reading a vote from a request body: strict, small, and with a short reason when not.

The option is checked against the poll the vote is for once that is known
(vote_fn/casting.py): the body says only which poll it means, if it says so at all.
"""

from __future__ import annotations

import json
from typing import NamedTuple
from urllib.parse import parse_qs

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from common.event import is_vote_id
from common.polls import Options, is_poll_id
from common.refusals import Refused

MAX_BODY_BYTES = 1024
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_NAMED_ONCE = ("vote", "vote_id", "poll")  # the fields of a JSON vote; none may appear twice
_FIELDS = frozenset(_NAMED_ONCE)
_SPELLED_OUT = tuple(b'"%s"' % name.encode() for name in _NAMED_ONCE)


class Ballot(NamedTuple):
    option: object  # as sent: checked against its poll's options (checked_option)
    vote_id: str | None  # the client's own vote id, reused on retries (the API's only)
    poll: str | None  # the poll it is for; None: the one open


async def read_body(receive: Receive, sent_type: str, content_type: str) -> bytes:
    """The body, if it is of ``content_type`` (``sent_type``: the request's Content-Type)
    and small. Read from ``receive`` as Starlette's ``Request.stream`` does, without the
    async generator and the Request around it (1.9 µs against 0.6 µs here)."""
    if sent_type.split(";")[0].strip().lower() != content_type:
        raise Refused(415, "content_type", f"send the vote as {content_type}")
    body: bytes = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        if not message.get("more_body", False):
            return body


def checked_option(value: object, options: Options) -> str:
    if not isinstance(value, str) or value not in options:
        raise Refused(422, "unknown_option",
                      f"unknown option: choose one of {', '.join(options.ids)}")
    return value


def form_vote(body: bytes) -> Ballot:
    """A form post: exactly one ``vote`` field, and the ``poll`` the page showed."""
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True,
                          max_num_fields=4)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "malformed", "the form is malformed") from None
    values, polls = fields.pop("vote", []), fields.pop("poll", [])
    if len(values) != 1 or len(polls) > 1 or fields:
        raise Refused(400, "malformed", "send exactly one field vote, and at most one poll")
    return Ballot(values[0], None, _checked_poll(polls[0]) if polls else None)


def _checked_poll(value: object) -> str:
    if not is_poll_id(value):
        raise Refused(422, "bad_poll", "poll must be a poll's id, as GET /api/poll gives it")
    return str(value)


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    names = [name for name, _ in pairs]
    if any(names.count(name) > 1 for name in _NAMED_ONCE):
        raise Refused(400, "malformed", "the body names vote, vote_id or poll twice")
    return dict(pairs)


def _names_a_field_twice(body: bytes) -> bool:
    """Whether the JSON object names a field twice (which of the two would count
    depends on the parser, so the body is refused). Without escapes a name is spelled out,
    so counting it is enough; the full check runs only when that cannot tell."""
    if b"\\" not in body:
        for name in _SPELLED_OUT:  # a plain loop, no generator: it runs on every vote
            if body.count(name) > 1:
                break
        else:
            return False
    try:
        json.loads(body, object_pairs_hook=_reject_duplicates)
    except Refused:
        return True
    except (ValueError, RecursionError):
        return False  # not valid JSON either way: orjson has said so already
    return False


def api_vote(body: bytes) -> Ballot:
    """A JSON vote: the option, the client's own vote id (optional, reused on retries), and
    the poll (optional)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused(400, "malformed", "the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise Refused(400, "malformed", 'send a JSON object such as {"vote": "cats"}')
    if _names_a_field_twice(body):
        raise Refused(400, "malformed", "the body names vote, vote_id or poll twice")
    if not document.keys() <= _FIELDS:
        raise Refused(422, "unknown_field", "send only vote and, optionally, vote_id and poll")
    vote_id, poll = document.get("vote_id"), document.get("poll")
    if vote_id is not None and not is_vote_id(vote_id):
        raise Refused(422, "bad_vote_id", "vote_id must be 32 lower-case hex digits")
    return Ballot(document.get("vote"), vote_id, None if poll is None else _checked_poll(poll))
