"""The vote event: the JSON document vote_fn pushes and worker_fn applies.

The vote id is made by vote_fn before the push and reused on a retry, so a
repeated push of the same vote can never count twice. Readers ignore fields
they do not know.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import NamedTuple, TypeGuard

import orjson

from common.settings import Options

_VOTE_ID = re.compile(r"[0-9a-f]{32}").fullmatch
_VOTER_ID = re.compile(r"[0-9A-Za-z_-]{16,64}").fullmatch


class InvalidEvent(ValueError):
    """A queue entry that cannot be applied; the message is the dead-letter reason."""


class VoteEvent(NamedTuple):  # a tuple: the drain builds hundreds of thousands a second
    vote_id: str
    voter: str
    option: str
    accepted_ms: int

    @classmethod
    def new(cls, voter: str, option: str, vote_id: str | None = None) -> VoteEvent:
        """A vote accepted now; a new random id unless the client named its own."""
        return cls(vote_id or secrets.token_hex(16), voter, option, time.time_ns() // 1_000_000)

    def encode(self) -> bytes:
        return orjson.dumps({"id": self.vote_id, "voter": self.voter, "vote": self.option,
                             "ts": self.accepted_ms})


def is_vote_id(value: object) -> TypeGuard[str]:
    return type(value) is str and _VOTE_ID(value) is not None


def is_voter_id(value: object) -> TypeGuard[str]:
    return type(value) is str and _VOTER_ID(value) is not None


def decode(raw: bytes, options: Options) -> VoteEvent:
    """Validate one queue entry; raise InvalidEvent with a short reason."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidEvent("not JSON") from None
    if type(document) is not dict:
        raise InvalidEvent("not a JSON object")
    vote_id, voter = document.get("id"), document.get("voter")
    option, accepted_ms = document.get("vote"), document.get("ts")
    if not is_vote_id(vote_id):
        raise InvalidEvent("missing or malformed id")
    if not is_voter_id(voter):
        raise InvalidEvent("missing or malformed voter")
    if type(option) is not str or option not in options.id_set:
        raise InvalidEvent("unknown option")
    if type(accepted_ms) is not int or not 0 < accepted_ms < 2**53:
        raise InvalidEvent("missing or malformed ts")
    return VoteEvent(vote_id, voter, option, accepted_ms)
