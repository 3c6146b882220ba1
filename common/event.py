"""The queue's entries: the JSON documents vote_fn pushes and worker_fn applies, in order.

- A vote: ``{"id", "voter", "vote", "ts", "poll"}``. The vote id is made by vote_fn before
  the push and reused on a retry, so a repeated push of the same vote can never count twice.
  A vote without ``poll`` is a vote in the first poll (common/polls.py).
- A poll's definition, ``{"type": "poll", "poll", "question", "options", "results", "ts",
  "actor"}``, and its opening and closing, ``{"type": "open" | "close", "poll", "ts",
  "actor"}``: they travel through the same queue, so the worker applies a poll before the
  votes cast in it. Their ``ts`` is Valkey's clock in µs when vote_fn queued them (two
  actions of one admin call one µs apart): the latest wins, so a replay changes nothing.

Readers ignore fields they do not know.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from typing import NamedTuple, TypeGuard

import orjson

from common.polls import FIRST, Poll, is_poll_id, poll_from_dict

_VOTE_ID = re.compile(r"[0-9a-f]{32}").fullmatch
_VOTER_ID = re.compile(r"[0-9A-Za-z_-]{16,64}").fullmatch
POLL_ACTIONS = ("poll", "open", "close")
_MAX_ACTOR_CHARS = 100


class InvalidEvent(ValueError):
    """A queue entry that cannot be applied; the message is the dead-letter reason."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class VoteEvent(NamedTuple):  # a tuple: the drain builds hundreds of thousands a second
    vote_id: str
    voter: str
    option: str
    accepted_ms: int
    poll: str = FIRST

    @classmethod
    def new(cls, poll: str, voter: str, option: str, vote_id: str | None = None) -> VoteEvent:
        """A vote accepted now; a new random id unless the client named its own. A vote id
        must be unique, not unguessable (a client may name its own, and a receipt needs the
        voter's id too): Python's generator makes it without the system call that each read
        of the operating system's random source costs (~6 % of a vote's CPU)."""
        return cls(vote_id or f"{random.getrandbits(128):032x}", voter, option, now_ms(), poll)

    def encode(self) -> bytes:
        return orjson.dumps({"id": self.vote_id, "voter": self.voter, "vote": self.option,
                             "ts": self.accepted_ms, "poll": self.poll})


class PollEvent(NamedTuple):
    action: str  # "poll" (its definition), "open" or "close"
    poll: str
    at_us: int  # Valkey's clock, µs: orders the actions on a poll
    actor: str
    definition: Poll | None = None  # for "poll"

    def encode(self) -> bytes:
        document = {"type": self.action, "poll": self.poll, "ts": self.at_us,
                    "actor": self.actor}
        if self.definition is not None:
            document.update(self.definition.as_dict())
        return orjson.dumps(document)


def is_vote_id(value: object) -> TypeGuard[str]:
    return type(value) is str and _VOTE_ID(value) is not None


def is_voter_id(value: object) -> TypeGuard[str]:
    return type(value) is str and _VOTER_ID(value) is not None


def _time(value: object) -> int:
    if type(value) is not int or not 0 < value < 2**53:
        raise InvalidEvent("missing or malformed ts")
    return value


def decode(raw: bytes, polls: Mapping[str, Poll]) -> VoteEvent | PollEvent:
    """Validate one queue entry against the polls known so far; raise InvalidEvent with a
    short reason."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidEvent("not JSON") from None
    if type(document) is not dict:
        raise InvalidEvent("not a JSON object")
    if "type" in document:
        return _poll_event(document, polls)
    vote_id, voter = document.get("id"), document.get("voter")
    option, poll_id = document.get("vote"), document.get("poll", FIRST)
    if not is_vote_id(vote_id):
        raise InvalidEvent("missing or malformed id")
    if not is_voter_id(voter):
        raise InvalidEvent("missing or malformed voter")
    poll = polls.get(poll_id) if type(poll_id) is str else None
    if poll is None:
        raise InvalidEvent("unknown poll")
    if type(option) is not str or option not in poll.options.id_set:
        raise InvalidEvent("unknown option")
    return VoteEvent(vote_id, voter, option, _time(document.get("ts")), poll.id)


def _poll_event(document: dict[str, object], polls: Mapping[str, Poll]) -> PollEvent:
    action, poll_id, actor = document["type"], document.get("poll"), document.get("actor", "")
    if action not in POLL_ACTIONS:
        raise InvalidEvent("unknown type")
    if not is_poll_id(poll_id) or type(poll_id) is not str:
        raise InvalidEvent("missing or malformed poll")
    if type(actor) is not str or len(actor) > _MAX_ACTOR_CHARS:
        raise InvalidEvent("malformed actor")
    at_us = _time(document.get("ts"))
    if action != "poll":
        if poll_id not in polls:
            raise InvalidEvent("unknown poll")
        return PollEvent(str(action), poll_id, at_us, actor)
    try:
        definition = poll_from_dict(poll_id, document)
    except ValueError as error:
        raise InvalidEvent(f"malformed poll: {error}") from None
    return PollEvent("poll", poll_id, at_us, actor, definition)
