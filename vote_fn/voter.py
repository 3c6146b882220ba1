"""The voter's identity: a random id in a cookie signed with VOTE_SECRET.

VOTE_SECRET holds one plain secret, or several ``kid:secret`` entries so that the key can
rotate without logging everyone out: cookies are signed with the first key and carry its
id (``kid.voter.signature``); a cookie verifies under the key its id names, and a cookie
without an id (signed with a plain secret) under any key. A cookie that does not verify
is ignored: the request gets a fresh voter, as a request without a cookie does.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer, base64_encode, want_bytes
from starlette.responses import Response

from common.event import is_voter_id

COOKIE = "voter_id"
# "<poll>.<option>": the option shown as chosen; display only, never trusted for counting
CHOICE_COOKIE = "vote"
# Over HTTPS the names carry the __Host- prefix: the browser then accepts the cookie only
# from this very host, over HTTPS, for the whole site, so a sibling domain or a plain-HTTP
# response cannot plant one.
HOST_PREFIX = "__Host-"
MAX_AGE_S = 365 * 24 * 3600
MIN_SECRET_CHARS = 16
# Cookies whose verdict is remembered: a hall's voters, each verified on its page load and
# again on each vote (8,192 of them hold ~2 MB, measured with tracemalloc).
REMEMBERED_COOKIES = 8192
VOTER_ID_BYTES = 16  # 128 random bits, 22 characters of URL-safe base64
IDS_PER_READ = 64  # new voter ids made from one read of the operating system's random source
_KID = re.compile(r"[A-Za-z0-9_-]{1,16}")


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str  # "" for a single plain secret: its cookies carry no key id
    secret: str


def parse_keys(raw: str) -> tuple[SigningKey, ...]:
    """VOTE_SECRET: ``kid:secret`` entries, comma separated (the first signs), or one plain
    secret. Errors never repeat the value: it is a secret."""
    entries = [entry.strip() for entry in raw.split(",")]
    keyed = [entry.partition(":") for entry in entries]
    keys: tuple[SigningKey, ...]
    if len(entries) == 1 and not (keyed[0][1] and _KID.fullmatch(keyed[0][0])):
        keys = (SigningKey("", entries[0]),)
    else:
        for number, (kid, sep, _) in enumerate(keyed, 1):
            if not sep or not _KID.fullmatch(kid):
                raise ValueError(f"entry {number} is not kid:secret (kid: 1-16 of A-Z a-z 0-9 "
                                 "_ -)")
        keys = tuple(SigningKey(kid, secret.strip()) for kid, _, secret in keyed)
        if len({key.kid for key in keys}) != len(keys):
            raise ValueError("a key id appears twice")
    for key in keys:
        if len(key.secret) < MIN_SECRET_CHARS:
            name = f"the secret of {key.kid!r}" if key.kid else "it"
            raise ValueError(f"{name} is too short: use at least {MIN_SECRET_CHARS} random "
                             "characters")
    return keys


def cookie_names(https: bool) -> tuple[str, str]:
    """The voter cookie's and the choice cookie's names."""
    prefix = HOST_PREFIX if https else ""
    return prefix + COOKIE, prefix + CHOICE_COOKIE


@functools.cache
def _cookie_attributes(secure: bool) -> str:
    """What follows ``name=value`` in every cookie vote_fn sets, rendered once by
    Starlette's ``set_cookie`` (``http.cookies``), which costs ~12 µs a cookie."""
    response = Response()
    response.set_cookie("name", "value", max_age=MAX_AGE_S, httponly=True, samesite="lax",
                        secure=secure)
    return response.headers["set-cookie"].removeprefix("name=value")


def set_cookie(name: str, value: str, secure: bool) -> tuple[bytes, bytes]:
    """The ``Set-Cookie`` header of one of vote_fn's cookies. The values never need
    quoting: a signed voter id is URL-safe base64 and dots, a choice ``[a-z0-9_.-]``."""
    return b"set-cookie", f"{name}={value}{_cookie_attributes(secure)}".encode("latin-1")


class _KeyedSigner(Signer):
    """itsdangerous's HMAC-SHA256 signer, the same signatures, from an HMAC keyed once and
    copied for each one: itsdangerous derives its key (a hash) and keys a new HMAC for every
    signature (OpenSSL 3 looks the digest up anew each time): 3.3 µs a signature that way,
    2.0 this way. Verifying is itsdangerous's own, once a cookie (VoterIds remembers)."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret, salt="voter-id", digest_method=hashlib.sha256)
        self._keyed = hmac.new(self.derive_key(), digestmod=hashlib.sha256)

    def get_signature(self, value: str | bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(want_bytes(value))
        return base64_encode(mac.digest())


class VoterIds:
    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self._signers = {key.kid: _KeyedSigner(key.secret) for key in keys}
        self._kid = keys[0].kid
        # Derived from the signing key: after a rotation a cookie-less retry of a vote sent
        # before it becomes a new voter (the one window where a retry can count twice).
        self._derive_key = hashlib.sha256(b"voter-for-vote\0" + keys[0].secret.encode()).digest()
        # A cookie's verdict cannot change while the keys do not: a cookie seen lately costs
        # a lookup instead of itsdangerous's unsign (4.3 µs here: base64, an HMAC, the checks).
        self._verified = functools.lru_cache(maxsize=REMEMBERED_COOKIES)(self._verify)
        self._unused_ids: list[str] = []

    def new(self) -> str:
        """A new voter's random id, as ``secrets.token_urlsafe(16)`` makes one. Each read of
        the operating system's random source is a system call (~0.5 µs of every new voter's
        vote), so one read makes the next IDS_PER_READ ids."""
        if not self._unused_ids:
            read = os.urandom(VOTER_ID_BYTES * IDS_PER_READ)
            self._unused_ids = [
                base64.urlsafe_b64encode(read[start:start + VOTER_ID_BYTES]).rstrip(b"=").decode()
                for start in range(0, len(read), VOTER_ID_BYTES)]
        return self._unused_ids.pop()

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
        if not self._kid:
            return self._signers[""].sign(voter).decode()
        return self._signers[self._kid].sign(f"{self._kid}.{voter}").decode()

    def is_current(self, cookie: str) -> bool:
        """Signed with the signing key: an older key's cookie is signed again when seen, so
        that the key can be removed once those who come back have the new one."""
        if self._kid:
            return cookie.startswith(self._kid + ".")
        return cookie.count(".") == 1

    def verify(self, cookie: str | None) -> str | None:
        """The voter id if the cookie is genuine, else None."""
        if not cookie or len(cookie) > 200:
            return None
        return self._verified(cookie)

    def _verify(self, cookie: str) -> str | None:
        parts = cookie.split(".")
        if len(parts) == 3:  # kid.voter.signature
            signer = self._signers.get(parts[0]) if parts[0] else None
            candidates = [signer] if signer is not None else []
        elif len(parts) == 2:  # voter.signature, from a plain secret
            candidates = list(self._signers.values())
        else:
            return None
        for signer in candidates:
            try:
                value = signer.unsign(cookie).decode()
            except (BadSignature, UnicodeDecodeError):
                continue
            voter = value.rpartition(".")[2]
            return voter if is_voter_id(voter) else None
        return None
