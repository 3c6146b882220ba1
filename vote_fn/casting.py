"""Casting a vote, for the vote page's form and the JSON API alike.

Before anything is queued a vote must pass the cross-site check (403), the strict reading
of its body (4xx), be for the open poll (409) and one of its options (422), and pass the
limits (429, in the push itself); SECURITY.md says what each defends against. Its
voter is the one the signed cookie proves, else a new one (or, for a cookie-less client
retrying with its own vote id, the voter derived from that id, so the retry counts once).
It is acknowledged only once Redis holds it (vote_fn/queue.py), and a Redis that is down
or slow is a 503 within a second, never a hang.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from redis.exceptions import RedisError
from starlette.requests import Request, cookie_parser
from starlette.types import Receive, Scope

from common.event import VoteEvent
from common.headers import RawHeaders, request_headers
from common.polls import Poll
from common.proxies import Peer, peer_of
from common.refusals import Refused
from vote_fn import metrics
from vote_fn.ballot import Ballot, checked_option, read_body
from vote_fn.origin import cross_site_reason
from vote_fn.polls import PollBook
from vote_fn.queue import PollClosed, VoteQueue
from vote_fn.ratelimit import RateLimited
from vote_fn.refusals import cross_site, poll_closed, queue_refusal
from vote_fn.voter import VoterIds, cookie_names, set_cookie

log = logging.getLogger("vote_fn")
BallotReader = Callable[[bytes], Ballot]


class Cast(NamedTuple):  # a tuple: a frozen dataclass's __init__ cost ~1 µs of every vote
    event: VoteEvent
    cookies: RawHeaders  # only those that changed: signing costs real time

    @property
    def receipt(self) -> dict[str, object]:
        """What the voter needs to follow the vote (result_fn's receipts)."""
        event = self.event
        return {"vote_id": event.vote_id, "voter": event.voter, "vote": event.option,
                "accepted_ms": event.accepted_ms}


class Voting:
    """What casting a vote needs, made once in the lifespan."""

    def __init__(self, polls: PollBook, voters: VoterIds, queue: VoteQueue) -> None:
        self.polls = polls
        self.voters = voters
        self._queue = queue

    async def cast(self, scope: Scope, receive: Receive, content_type: str,
                   read: BallotReader) -> Cast:
        """Queue the request's vote; raise Refused (counted by reason) when it is not."""
        headers = request_headers(scope)
        try:
            if (reason := cross_site_reason(headers)) is not None:
                log.debug("vote refused as cross-site: %s", reason)
                raise cross_site()
            peer = peer_of(scope)
            cookies = cookie_parser(headers.get("cookie", ""))
            known = self.voters.verify(cookies.get(cookie_names(peer.https)[0]))
            ballot = read(await read_body(receive, headers.get("content-type", ""),
                                          content_type))
            try:
                poll = self._open_poll(ballot.poll)
                if poll is None:  # the copy of the open poll may be half a second old
                    poll = await self._open_poll_read_again(ballot.poll)
                option = checked_option(ballot.option, poll.options)
                voter = known
                if voter is None and ballot.vote_id is not None:
                    voter = self.voters.for_vote(ballot.vote_id)
                event = VoteEvent.new(poll.id, voter or self.voters.new(), option, ballot.vote_id)
                await self._queue.push(event.encode(), poll.id, known, peer.address)
            except (PollClosed, RateLimited, RedisError, TimeoutError) as error:
                raise queue_refusal(error) from None
        except Refused as refused:
            metrics.REJECTED.labels(refused.label).inc()
            raise
        metrics.ACCEPTED.inc()
        return Cast(event, self._changed_cookies(cookies, peer, event, known))

    def _open_poll(self, requested: str | None) -> Poll | None:
        """The poll to count the vote in: the one asked for (or, asked for none, the one
        open), if it is open in the copy read up to half a second ago (vote_fn/polls.py)."""
        poll = self.polls.open
        return poll if poll is not None and requested in (None, poll.id) else None

    async def _open_poll_read_again(self, requested: str | None) -> Poll:
        """The same, from the open poll read again now: else Refused (409)."""
        await self.polls.refresh()
        if (poll := self._open_poll(requested)) is not None:
            return poll
        current = self.polls.open
        raise poll_closed(requested, None if current is None else current.id)

    def _changed_cookies(self, cookies: dict[str, str], peer: Peer, event: VoteEvent,
                         known: str | None) -> RawHeaders:
        voter_cookie, choice_cookie = cookie_names(peer.https)
        headers = []
        if known != event.voter or not self.voters.is_current(cookies[voter_cookie]):
            headers.append(set_cookie(voter_cookie, self.voters.sign(event.voter), peer.https))
        choice = f"{event.poll}.{event.option}"
        if cookies.get(choice_cookie) != choice:
            headers.append(set_cookie(choice_cookie, choice, peer.https))
        return headers

    def chosen(self, request: Request) -> tuple[str | None, RawHeaders]:
        """The option this browser's cookies say it chose (None without a genuine voter
        cookie), and its voter cookie signed again if an older key signed it."""
        peer = peer_of(request.scope)
        voter_cookie, choice_cookie = cookie_names(peer.https)
        voter = self.voters.verify(request.cookies.get(voter_cookie))
        if voter is None:
            return None, []
        poll_id, _, choice = request.cookies.get(choice_cookie, "").partition(".")
        refreshed = []
        if not self.voters.is_current(request.cookies[voter_cookie]):
            refreshed.append(set_cookie(voter_cookie, self.voters.sign(voter), peer.https))
        poll = self.polls.open
        chosen = poll is not None and poll_id == poll.id and choice in poll.options
        return (choice if chosen else None), refreshed
