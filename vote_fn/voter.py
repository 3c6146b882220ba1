"""The voter's identity: a random id in a cookie signed with VOTE_SECRET."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from itsdangerous import BadSignature, Signer

from common.event import is_voter_id

COOKIE = "voter_id"
CHOICE_COOKIE = "vote"  # the option shown as chosen; display only, never trusted for counting
MAX_AGE_S = 365 * 24 * 3600


class VoterIds:
    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret, salt="voter-id", digest_method=hashlib.sha256)
        self._derive_key = hashlib.sha256(b"voter-for-vote\0" + secret.encode()).digest()

    @staticmethod
    def new() -> str:
        return secrets.token_urlsafe(16)

    def for_vote(self, vote_id: str) -> str:
        """The voter of a cookie-less client that names its own vote id.

        A client without the cookie that retries a vote (same vote id) after a lost answer
        must not become a second voter, or the retry would count twice. Deriving the voter
        from the vote id with a keyed hash makes every retry the same voter, and nobody can
        aim it at another voter's id without the secret.
        """
        digest = hmac.new(self._derive_key, vote_id.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

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
