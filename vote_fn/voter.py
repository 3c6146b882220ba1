"""The voter's identity: a random id in a cookie signed with VOTE_SECRET."""

from __future__ import annotations

import hashlib
import secrets

from itsdangerous import BadSignature, Signer

from common.event import is_voter_id

COOKIE = "voter_id"
CHOICE_COOKIE = "vote"  # the option shown as chosen; display only, never trusted for counting
MAX_AGE_S = 365 * 24 * 3600


class VoterIds:
    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret, salt="voter-id", digest_method=hashlib.sha256)

    @staticmethod
    def new() -> str:
        return secrets.token_urlsafe(16)

    def sign(self, voter: str) -> str:
        return self._signer.sign(voter).decode()

    def verify(self, cookie: str | None) -> str | None:
        """The voter id if the cookie is genuine, else None."""
        if not cookie:
            return None
        try:
            voter = self._signer.unsign(cookie).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        return voter if is_voter_id(voter) else None
