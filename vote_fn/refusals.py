"""Why a vote was not queued: one answer per cause (common/refusals.py's Refused), rendered
as JSON by the API and as the vote page by the form (vote_fn/api.py, vote_fn/pages.py). The
body's own refusals are raised where it is read (vote_fn/ballot.py).

Every refusal is counted by its reason (``vote_votes_rejected_total``) where it is raised
to the endpoint (vote_fn/casting.py), and nothing is queued.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from common.refusals import Refused
from vote_fn.queue import PollClosed
from vote_fn.ratelimit import RateLimited

log = logging.getLogger("vote_fn")
RETRY_UNAVAILABLE_S = 2


def cross_site() -> Refused:
    return Refused(403, "cross_site", "votes are accepted only from this site's own page")


def poll_closed(requested: str | None, open_now: str | None) -> Refused:
    """A vote for a poll that is not open: nothing is queued."""
    if open_now is None:
        return Refused(409, "poll_closed", "no poll is open: wait for the presenter to open one")
    return Refused(409, "poll_closed", f"poll {requested!r} is not open: vote in "
                   f"{open_now!r}, the one open now")


def queue_refusal(error: PollClosed | RateLimited | RedisError | TimeoutError) -> Refused:
    """The refusal for a push that Redis did not take."""
    if isinstance(error, PollClosed):  # closed between the check and the push
        return poll_closed(str(error), None)
    if isinstance(error, RateLimited):
        if error.new_voter:
            return Refused(429, "new_voters_limited", "too many people started voting from your "
                           f"network just now: try again in {error.retry_after_s} s",
                           error.retry_after_s)
        return Refused(429, "rate_limited", "too many votes from this browser in a short time: "
                       f"try again in {error.retry_after_s} s", error.retry_after_s)
    log.warning("vote not accepted, Redis unavailable: %s",
                str(error) or f"no answer in time ({type(error).__name__})")
    return Refused(503, "redis_unavailable", "votes cannot be queued right now: try again in a "
                   "few seconds", RETRY_UNAVAILABLE_S)
