"""What result_fn answers when it cannot: one refusal per cause (common/refusals.py)."""

from __future__ import annotations

import logging

import psycopg

from common.refusals import Refused
from common.schema import SchemaMissing

log = logging.getLogger("result_fn")


def unreadable(error: psycopg.Error | SchemaMissing) -> Refused:
    """The results could not be read: the database is down, or not prepared yet."""
    if isinstance(error, SchemaMissing):
        return Refused(503, "not_ready", "the results are not ready: the worker has not "
                       "created the database tables yet", 5)
    log.warning("results unavailable: %s", error)
    return Refused(503, "database_unavailable", "the results database is unavailable; retry "
                   "shortly", 2)


def no_such_poll(poll_id: str | None) -> Refused:
    if poll_id is None:
        return Refused(503, "not_ready", "there is no poll yet", 5)
    return Refused(404, "no_such_poll", f"there is no poll {poll_id[:40]!r}")


def process_full() -> Refused:
    return Refused(503, "process_full", "too many live viewers on this instance; retry", 5)


def client_full() -> Refused:
    return Refused(429, "client_full", "too many live streams from your address; close "
                   "another results page or retry later", 30)


def bad_receipt_query() -> Refused:
    return Refused(400, "bad_request", "ask as /api/receipts/<vote_id>?voter=<voter>&ts="
                   "<accepted_ms>, with the values from the vote's answer")
