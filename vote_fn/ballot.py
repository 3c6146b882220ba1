"""Reading a vote from a request body: strict, small, and with a short reason when not."""

from __future__ import annotations

import json
from typing import NamedTuple
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request

from common.event import is_vote_id
from common.polls import Options
from common.refusals import Refused

MAX_BODY_BYTES = 1024
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_NAMED_ONCE = ("vote", "vote_id")  # the fields of a JSON vote; neither may appear twice
_SPELLED_OUT = tuple(b'"%s"' % name.encode() for name in _NAMED_ONCE)


class Ballot(NamedTuple):
    option: str
    vote_id: str | None  # the client's own vote id, reused on retries (the API's only)


async def read_body(request: Request, content_type: str) -> bytes:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != content_type:
        raise Refused(415, "content_type", f"send the vote as {content_type}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    return body


def checked_option(value: object, options: Options) -> str:
    if not isinstance(value, str) or value not in options:
        raise Refused(422, "unknown_option",
                      f"unknown option: choose one of {', '.join(options.ids)}")
    return value


def form_vote(body: bytes, options: Options) -> Ballot:
    """The option of a form post with exactly one ``vote`` field."""
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True,
                          max_num_fields=4)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "malformed", "the form is malformed") from None
    values = fields.get("vote", [])
    if len(values) != 1 or len(fields) != 1:
        raise Refused(400, "malformed", "send exactly one field: vote")
    return Ballot(checked_option(values[0], options), None)


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    names = [name for name, _ in pairs]
    if any(names.count(name) > 1 for name in _NAMED_ONCE):
        raise Refused(400, "malformed", "the body names vote or vote_id twice")
    return dict(pairs)


def _names_a_field_twice(body: bytes) -> bool:
    """Whether the JSON object names vote or vote_id twice (which of the two would count
    depends on the parser, so the body is refused). Without escapes a name is spelled out,
    so counting it is enough; the full check runs only when that cannot tell."""
    if b"\\" not in body and all(body.count(name) <= 1 for name in _SPELLED_OUT):
        return False
    try:
        json.loads(body, object_pairs_hook=_reject_duplicates)
    except Refused:
        return True
    except (ValueError, RecursionError):
        return False  # not valid JSON either way: orjson has said so already
    return False


def api_vote(body: bytes, options: Options) -> Ballot:
    """The option and the client's own vote id (optional, reused on retries) of a JSON vote."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused(400, "malformed", "the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise Refused(400, "malformed", 'send a JSON object such as {"vote": "cats"}')
    if _names_a_field_twice(body):
        raise Refused(400, "malformed", "the body names vote or vote_id twice")
    if len(document) > 2 or not document.keys() <= {"vote", "vote_id"}:
        raise Refused(422, "unknown_field", "send only vote and, optionally, vote_id")
    vote_id = document.get("vote_id")
    if vote_id is not None and not is_vote_id(vote_id):
        raise Refused(422, "bad_vote_id", "vote_id must be 32 lower-case hex digits")
    return Ballot(checked_option(document.get("vote"), options), vote_id)
