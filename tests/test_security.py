"""The public vote endpoint resists abuse: bad input of every kind, forged cookies,
cross-site posts, spoofed addresses, floods and garbage headers change no tally and never
get a 5xx. Against real Valkey and PostgreSQL; the stream tests against a real uvicorn."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import psycopg
import pytest
import redis
from starlette.testclient import TestClient

from common import keys
from common.event import VoteEvent, decode
from common.proxies import TrustedProxies, parse_trusted
from common.settings import SettingsError
from support.functions import FunctionProcess, drain
from support.metrics import metric as metric_value
from support.sse import events
from support.stores import tally
from support.votes import expected_tally, make_votes, push
from support.waits import wait_until
from vote_fn.app import create_app
from vote_fn.ratelimit import RATE_KEY_PREFIX, Limits, RateLimit, rate_key
from vote_fn.settings import VoteSettings
from vote_fn.voter import COOKIE, SigningKey, VoterIds, parse_keys

from .conftest import POLLS, SECRET

Conn = psycopg.Connection[tuple[object, ...]]
OLD_SECRET, NEW_SECRET = "old-secret-0123456789abcdef", "new-secret-fedcba9876543210"
VOTER = "victim-voter-0123456789"  # a voter id an attacker would like to vote as


def make_client(environ: dict[str, str], **settings: str) -> TestClient:
    """A vote_fn app; keyword arguments become settings, and ``base_url``/``client`` go
    to the TestClient (``client`` is the connecting peer's address)."""
    client_args: dict[str, Any] = {}
    for name in ("base_url", "client"):
        if name in settings:
            client_args[name] = settings.pop(name)
    return TestClient(create_app(VoteSettings.from_env({**environ, **settings})),
                      **client_args)


@pytest.fixture
def client(environ: dict[str, str], redis_client: redis.Redis) -> Iterator[TestClient]:
    with make_client(environ) as test_client:
        yield test_client


@pytest.fixture
def limited(environ: dict[str, str], redis_client: redis.Redis) -> Iterator[TestClient]:
    """vote_fn with 3 votes a minute per voter, and 3 new voters per client address at once
    (then 3 a minute)."""
    with make_client(environ, VOTE_RATE_LIMIT="3", VOTE_RATE_WINDOW_SECONDS="60",
                     VOTE_NEW_VOTERS_LIMIT="3", VOTE_NEW_VOTERS_BURST="3") as test_client:
        yield test_client


def queued(client: redis.Redis) -> list[VoteEvent]:
    return [decode(raw, POLLS) for raw in client.lrange(keys.QUEUE, 0, -1)]


def metric(client: TestClient, name: str, **labels: str) -> float:
    return metric_value(client.get("/metrics").text, name, **labels)


# --- Strict input -----------------------------------------------------------------------

JSON_TYPE = {"content-type": "application/json"}
FORM_TYPE = {"content-type": "application/x-www-form-urlencoded"}


def nested(depth: int) -> bytes:
    return b'{"vote":' + b"[" * depth + b'"cats"' + b"]" * depth + b"}"


BAD_API_BODIES = [
    # (test id, body, content type, expected status)
    ("empty body", b"", JSON_TYPE, 400),
    ("whitespace only", b"  \n", JSON_TYPE, 400),
    ("no vote", b"{}", JSON_TYPE, 422),
    ("empty vote", b'{"vote":""}', JSON_TYPE, 422),
    ("unknown option", b'{"vote":"hamsters"}', JSON_TYPE, 422),
    ("upper case", b'{"vote":"CATS"}', JSON_TYPE, 422),
    ("title case", b'{"vote":"Cats"}', JSON_TYPE, 422),
    ("leading space", b'{"vote":" cats"}', JSON_TYPE, 422),
    ("trailing newline", b'{"vote":"cats\\n"}', JSON_TYPE, 422),
    ("tab inside", b'{"vote":"ca\\tts"}', JSON_TYPE, 422),
    ("cyrillic a homoglyph", '{"vote":"c\u0430ts"}'.encode(), JSON_TYPE, 422),
    ("fullwidth homoglyph", '{"vote":"\uff43ats"}'.encode(), JSON_TYPE, 422),
    ("zero-width space", '{"vote":"cats\u200b"}'.encode(), JSON_TYPE, 422),
    ("escaped homoglyph", b'{"vote":"c\\u0430ts"}', JSON_TYPE, 422),
    ("escaped NUL", b'{"vote":"cats\\u0000"}', JSON_TYPE, 422),
    ("raw NUL", b'{"vote":"cats\x00"}', JSON_TYPE, 400),
    ("escaped CRLF", b'{"vote":"cats\\r\\n"}', JSON_TYPE, 422),
    ("raw CRLF", b'{"vote":"cats\r\n"}', JSON_TYPE, 400),
    ("option label, not id", b'{"vote":"Dogs"}', JSON_TYPE, 422),
    ("duplicate vote", b'{"vote":"cats","vote":"dogs"}', JSON_TYPE, 400),
    ("duplicate vote, escaped", b'{"vote":"cats","vot\\u0065":"dogs"}', JSON_TYPE, 400),
    ("duplicate vote_id", b'{"vote":"cats","vote_id":"' + b"a" * 32 + b'","vote_id":"' +
     b"b" * 32 + b'"}', JSON_TYPE, 400),
    ("vote is a number", b'{"vote":1}', JSON_TYPE, 422),
    ("vote is true", b'{"vote":true}', JSON_TYPE, 422),
    ("vote is null", b'{"vote":null}', JSON_TYPE, 422),
    ("vote is a list", b'{"vote":["cats"]}', JSON_TYPE, 422),
    ("vote is an object", b'{"vote":{"id":"cats"}}', JSON_TYPE, 422),
    ("body is a list", b'["cats"]', JSON_TYPE, 400),
    ("body is a string", b'"cats"', JSON_TYPE, 400),
    ("body is a number", b"1", JSON_TYPE, 400),
    ("body is null", b"null", JSON_TYPE, 400),
    ("deep nesting", nested(400), JSON_TYPE, 422),
    ("unknown field", b'{"vote":"cats","admin":true}', JSON_TYPE, 422),
    ("vote in another case", b'{"Vote":"cats"}', JSON_TYPE, 422),
    ("deeper than the body limit", nested(600), JSON_TYPE, 413),
    ("truncated JSON", b'{"vote":"cats"', JSON_TYPE, 400),
    ("trailing garbage", b'{"vote":"cats"} x', JSON_TYPE, 400),
    ("two documents", b'{"vote":"cats"}{"vote":"dogs"}', JSON_TYPE, 400),
    ("single quotes", b"{'vote':'cats'}", JSON_TYPE, 400),
    ("NaN", b'{"vote":NaN}', JSON_TYPE, 400),
    ("huge number", b'{"vote":"cats","vote_id":1' + b"0" * 400 + b"}", JSON_TYPE, 400),
    ("not UTF-8", b'{"vote":"\xff\xfe"}', JSON_TYPE, 400),
    ("lone surrogate", b'{"vote":"\\ud800"}', JSON_TYPE, 400),
    ("UTF-16", '{"vote":"cats"}'.encode("utf-16"), JSON_TYPE, 400),
    ("vote_id not hex", b'{"vote":"cats","vote_id":"not-hex"}', JSON_TYPE, 422),
    ("vote_id upper case", b'{"vote":"cats","vote_id":"' + b"A" * 32 + b'"}', JSON_TYPE, 422),
    ("vote_id a number", b'{"vote":"cats","vote_id":12345}', JSON_TYPE, 422),
    ("vote_id too long", b'{"vote":"cats","vote_id":"' + b"a" * 33 + b'"}', JSON_TYPE, 422),
    ("oversized", b'{"vote":"' + b"x" * 2000 + b'"}', JSON_TYPE, 413),
    ("oversized padding", b'{"vote":"cats","pad":"' + b" " * 1100 + b'"}', JSON_TYPE, 413),
    ("no content type", b'{"vote":"cats"}', {}, 415),
    ("text/plain", b'{"vote":"cats"}', {"content-type": "text/plain"}, 415),
    ("form type", b"vote=cats", FORM_TYPE, 415),
    ("multipart", b'{"vote":"cats"}', {"content-type": "multipart/form-data; boundary=x"}, 415),
    ("json suffix type", b'{"vote":"cats"}', {"content-type": "application/vnd.x+json"}, 415),
]

BAD_FORM_BODIES = [
    ("empty body", b"", FORM_TYPE, 400),
    ("no vote field", b"choice=cats", FORM_TYPE, 400),
    ("empty vote", b"vote=", FORM_TYPE, 422),
    ("empty extra field", b"vote=cats&x=", FORM_TYPE, 400),
    ("unknown option", b"vote=hamsters", FORM_TYPE, 422),
    ("upper case", b"vote=CATS", FORM_TYPE, 422),
    ("plus as space", b"vote=cats+", FORM_TYPE, 422),
    ("encoded space", b"vote=%20cats", FORM_TYPE, 422),
    ("homoglyph", b"vote=c%D0%B0ts", FORM_TYPE, 422),
    ("NUL", b"vote=cats%00", FORM_TYPE, 422),
    ("CRLF", b"vote=cats%0D%0A", FORM_TYPE, 422),
    ("not UTF-8", b"vote=%FF", FORM_TYPE, 422),
    ("raw not UTF-8", b"vote=\xff", FORM_TYPE, 400),
    ("duplicate field", b"vote=cats&vote=dogs", FORM_TYPE, 400),
    ("duplicate, same value", b"vote=cats&vote=cats", FORM_TYPE, 400),
    ("extra field", b"vote=cats&admin=1", FORM_TYPE, 400),
    ("many fields", b"&".join([b"a=1"] * 50) + b"&vote=cats", FORM_TYPE, 400),
    ("no equals sign", b"vote", FORM_TYPE, 400),
    ("semicolon separator", b"vote=cats;vote=dogs", FORM_TYPE, 422),
    ("oversized", b"vote=" + b"c" * 2000, FORM_TYPE, 413),
    ("JSON body", b'{"vote":"cats"}', JSON_TYPE, 415),
    ("no content type", b"vote=cats", {}, 415),
]


@pytest.mark.parametrize(("body", "headers", "status"),
                         [case[1:] for case in BAD_API_BODIES],
                         ids=[case[0] for case in BAD_API_BODIES])
def test_bad_api_input_is_refused_with_a_reason_and_queues_nothing(
        client: TestClient, redis_client: redis.Redis, body: bytes, headers: dict[str, str],
        status: int) -> None:
    """Each malformed, oversized, ambiguous or mistyped JSON vote gets its 4xx and a short
    reason, and nothing reaches the queue."""
    response = client.post("/api/vote", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert redis_client.llen(keys.QUEUE) == 0


@pytest.mark.parametrize(("body", "headers", "status"),
                         [case[1:] for case in BAD_FORM_BODIES],
                         ids=[case[0] for case in BAD_FORM_BODIES])
def test_bad_form_input_is_refused_with_the_page_and_queues_nothing(
        client: TestClient, redis_client: redis.Redis, body: bytes, headers: dict[str, str],
        status: int) -> None:
    """Each bad form post gets its 4xx and the page saying why; nothing is queued."""
    response = client.post("/", content=body, headers=headers, follow_redirects=False)
    assert response.status_code == status, response.text
    assert 'role="alert"' in response.text
    assert redis_client.llen(keys.QUEUE) == 0


def test_a_body_sent_in_pieces_past_the_limit_is_refused(
        client: TestClient, redis_client: redis.Redis) -> None:
    """A chunked body (no Content-Length) is cut off at the limit too."""
    def pieces() -> Iterator[bytes]:
        yield b'{"vote":"cats","pad":"'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    response = client.post("/api/vote", content=pieces(), headers=JSON_TYPE)
    assert response.status_code == 413
    assert redis_client.llen(keys.QUEUE) == 0


def test_the_exact_option_ids_are_accepted(client: TestClient, redis_client: redis.Redis) -> None:
    """The control: the same requests with a well-formed vote are accepted."""
    assert client.post("/api/vote", content=b'{"vote":"cats"}', headers=JSON_TYPE
                       ).status_code == 202
    assert client.post("/", content=b"vote=dogs", headers=FORM_TYPE,
                       follow_redirects=False).status_code == 303
    assert client.post("/api/vote", content=b'{"vote":"cats","vote_id":null}',
                       headers={"content-type": "application/json; charset=utf-8"}
                       ).status_code == 202
    assert [event.option for event in reversed(queued(redis_client))] == ["cats", "dogs", "cats"]


# --- Voter identity ---------------------------------------------------------------------

def signed_by(secret: str, voter: str = VOTER) -> str:
    return VoterIds(parse_keys(secret)).sign(voter)


def flip(text: str, index: int) -> str:
    """``text`` with one character changed."""
    return text[:index] + ("B" if text[index] == "A" else "A") + text[index:][1:]


FORGED_COOKIES = [
    ("bare voter id", VOTER),
    ("forged signature", f"{VOTER}.forgedsignature"),
    ("empty signature", f"{VOTER}."),
    ("signed with another secret", signed_by("another-secret-0123456789")),
    ("tampered voter", signed_by(SECRET).replace("victim", "victiM")),
    ("tampered signature", flip(signed_by(SECRET), -5)),
    ("signature of another voter", VOTER + "." + signed_by(SECRET, "other-voter-0123456789"
                                                            ).rpartition(".")[2]),
    ("unknown key id", "k9." + signed_by(SECRET)),
    ("key id of a plain secret", "." + signed_by(SECRET)),
    ("too many parts", signed_by(SECRET) + ".x"),
    ("invalid voter id", signed_by(SECRET, "short")),
    ("very long", "v" * 5000),
    ("non-ASCII", "vötér-0123456789abcdef.sig"),
]


@pytest.mark.parametrize("cookie", [case[1] for case in FORGED_COOKIES],
                         ids=[case[0] for case in FORGED_COOKIES])
def test_a_forged_or_tampered_cookie_is_never_trusted(
        client: TestClient, redis_client: redis.Redis, cookie: str) -> None:
    """The API and the form both treat a bad cookie as no cookie: the vote is a fresh
    voter's (its own new signed cookie), never the voter the cookie names."""
    sent = {"cookie": f"{COOKIE}={cookie}".encode()}
    api = client.post("/api/vote", json={"vote": "cats"}, headers=sent)
    assert api.status_code == 202
    assert api.json()["voter"] != VOTER
    assert api.cookies[COOKIE] != cookie
    form = client.post("/", data={"vote": "dogs"}, headers=sent, follow_redirects=False)
    assert form.status_code == 303 and form.cookies[COOKIE] != cookie
    events = queued(redis_client)
    assert len(events) == 2 and VOTER not in {event.voter for event in events}


def test_voter_ids_are_random_and_signed_and_the_cookie_is_locked_down(
        client: TestClient) -> None:
    """Two new voters get unrelated 128-bit ids; the cookie is signed, HttpOnly and
    SameSite=Lax, and (over plain HTTP) neither Secure nor __Host- prefixed."""
    first = client.post("/api/vote", json={"vote": "cats"})
    client.cookies.clear()
    second = client.post("/api/vote", json={"vote": "cats"})
    voters = {first.json()["voter"], second.json()["voter"]}
    assert len(voters) == 2 and all(len(voter) == 22 for voter in voters)
    header = first.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}={first.json()['voter']}.")
    assert "HttpOnly" in header and "SameSite=lax" in header and "Path=/" in header
    assert "Secure" not in header and "__Host-" not in header


def test_over_https_the_cookies_are_secure_and_host_prefixed_and_hsts_is_sent(
        environ: dict[str, str], redis_client: redis.Redis) -> None:
    """Over HTTPS: __Host-voter_id with Secure, Path=/ and no Domain; HSTS on the answer;
    and the cookie is read back under that name."""
    with make_client(environ, base_url="https://testserver") as client:
        first = client.post("/api/vote", json={"vote": "cats"})
        cookies = first.headers.get_list("set-cookie")
        assert all(c.startswith("__Host-") and "Secure" in c and "Path=/" in c
                   and "Domain" not in c for c in cookies), cookies
        assert first.headers["strict-transport-security"].startswith("max-age=")
        second = client.post("/api/vote", json={"vote": "dogs"})
        assert second.json()["voter"] == first.json()["voter"]


def test_https_is_believed_from_a_trusted_proxy_only(
        environ: dict[str, str], redis_client: redis.Redis) -> None:
    """X-Forwarded-Proto: https counts from a trusted proxy (HSTS, __Host- cookies), and
    not from any other peer."""
    https = {"X-Forwarded-Proto": "https"}
    with make_client(environ, client=("127.0.0.1", 40000)) as behind_proxy:
        response = behind_proxy.post("/api/vote", json={"vote": "cats"}, headers=https)
        assert "strict-transport-security" in response.headers
        assert response.headers["set-cookie"].startswith("__Host-voter_id=")
    with make_client(environ, client=("203.0.113.9", 40000)) as direct:
        response = direct.post("/api/vote", json={"vote": "cats"}, headers=https)
        assert "strict-transport-security" not in response.headers
        assert response.headers["set-cookie"].startswith("voter_id=")


def test_a_rotated_secret_keeps_existing_voters(environ: dict[str, str],
                                               redis_client: redis.Redis) -> None:
    """A cookie signed under the old secret keeps its voter after the new key is added in
    front, and is signed again with the new key when seen (on a vote or the page); once
    the old key is removed, cookies nobody brought back get a fresh voter."""
    with make_client(environ, VOTE_SECRET=OLD_SECRET) as before:
        old = before.post("/api/vote", json={"vote": "cats"})
    old_cookie, voter = old.cookies[COOKIE], old.json()["voter"]

    def vote(client: TestClient, cookie: str) -> Any:
        return client.post("/api/vote", json={"vote": "cats"},
                           headers={"cookie": f"{COOKIE}={cookie}"})

    with make_client(environ, VOTE_SECRET=f"k2:{NEW_SECRET},k1:{OLD_SECRET}") as during:
        response = vote(during, old_cookie)
        assert response.json()["voter"] == voter
        new_cookie = response.cookies[COOKIE]
        assert new_cookie.startswith(f"k2.{voter}.")
        again = vote(during, new_cookie)
        assert again.json()["voter"] == voter and COOKIE not in again.cookies
        page = during.get("/", headers={"cookie": f"{COOKIE}={old_cookie}"})
        assert page.cookies[COOKIE].startswith(f"k2.{voter}.")

    with make_client(environ, VOTE_SECRET=f"k2:{NEW_SECRET}") as after:
        assert vote(after, new_cookie).json()["voter"] == voter
        assert vote(after, old_cookie).json()["voter"] != voter


def test_a_cookieless_retry_keeps_its_voter_with_several_keys(
        environ: dict[str, str], redis_client: redis.Redis) -> None:
    """With several keys, a client without a cookie that repeats a vote id is the same
    voter each time (so the retry counts once), on every instance with the same keys."""
    rotating = f"k2:{NEW_SECRET},k1:{OLD_SECRET}"
    vote = {"vote": "cats", "vote_id": "c" * 32}
    voters = set()
    for _ in range(2):
        with make_client(environ, VOTE_SECRET=rotating) as instance:
            voters.add(instance.post("/api/vote", json=vote).json()["voter"])
    assert len(voters) == 1
    assert {event.vote_id for event in queued(redis_client)} == {"c" * 32}


@pytest.mark.parametrize("secret", [
    "short",
    "k1:short",
    f"k1:{NEW_SECRET},k1:{OLD_SECRET}",
    f"k1:{NEW_SECRET},{OLD_SECRET}",
    f"k1:{NEW_SECRET},",
    f"bad kid!:{NEW_SECRET},k2:{OLD_SECRET}",
])
def test_a_bad_vote_secret_is_named_without_being_repeated(secret: str) -> None:
    """VOTE_SECRET errors name the variable and never echo the secret."""
    with pytest.raises(SettingsError, match="VOTE_SECRET") as raised:
        VoteSettings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "VOTE_SECRET": secret})
    for part in (NEW_SECRET, OLD_SECRET, "short"):
        assert part not in str(raised.value).replace("too short", "")


def test_vote_secret_forms() -> None:
    """A plain secret (even with a colon after a non-id) or kid:secret entries."""
    assert parse_keys(NEW_SECRET) == (SigningKey("", NEW_SECRET),)
    assert parse_keys("not an id:" + NEW_SECRET) == (SigningKey("", "not an id:" + NEW_SECRET),)
    assert parse_keys(f" k2:{NEW_SECRET} , k1:{OLD_SECRET} ") == (
        SigningKey("k2", NEW_SECRET), SigningKey("k1", OLD_SECRET))


# --- Cross-site -------------------------------------------------------------------------

CROSS_SITE = [
    ("Sec-Fetch-Site cross-site", {"Sec-Fetch-Site": "cross-site"}),
    ("Sec-Fetch-Site same-site", {"Sec-Fetch-Site": "same-site"}),
    ("Sec-Fetch-Site unknown value", {"Sec-Fetch-Site": "sideways"}),
    ("cross-site with our Origin", {"Sec-Fetch-Site": "cross-site",
                                    "Origin": "http://testserver"}),
    ("Origin null", {"Origin": "null"}),
    ("Origin null, same-origin fetch", {"Origin": "null", "Sec-Fetch-Site": "same-origin"}),
    ("another Origin", {"Origin": "https://evil.example"}),
    ("Origin of a sibling", {"Origin": "http://evil.testserver"}),
    ("Origin with another port", {"Origin": "http://testserver:8443"}),
    ("Origin not a URL", {"Origin": "garbage"}),
]


@pytest.mark.parametrize("headers", [case[1] for case in CROSS_SITE],
                         ids=[case[0] for case in CROSS_SITE])
def test_a_cross_site_vote_is_refused_with_403(
        client: TestClient, redis_client: redis.Redis, headers: dict[str, str]) -> None:
    """A vote a browser marks as sent from another site (or from an opaque origin) gets
    403 on the API and the form, nothing is queued, and the refusal is counted."""
    before = metric(client, "vote_votes_rejected_total", reason="cross_site")
    api = client.post("/api/vote", json={"vote": "cats"}, headers=headers)
    form = client.post("/", data={"vote": "cats"}, headers=headers, follow_redirects=False)
    assert api.status_code == 403 and api.json()["error"]
    assert form.status_code == 403 and 'role="alert"' in form.text
    assert "set-cookie" not in api.headers
    assert redis_client.llen(keys.QUEUE) == 0
    assert metric(client, "vote_votes_rejected_total", reason="cross_site") == before + 2


@pytest.mark.parametrize("headers", [
    {},
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
    {"Sec-Fetch-Site": "none"},
    {"Origin": "http://testserver"},
    {"Origin": "http://TestServer"},
], ids=["no header (curl)", "same-origin", "same-origin with Origin", "typed by the person",
        "own Origin, no Sec-Fetch-Site", "own Origin, other case"])
def test_a_same_origin_or_non_browser_vote_is_accepted(
        client: TestClient, redis_client: redis.Redis, headers: dict[str, str]) -> None:
    """The page's own posts, and clients that send neither header, still vote."""
    assert client.post("/api/vote", json={"vote": "cats"}, headers=headers).status_code == 202
    assert client.post("/", data={"vote": "dogs"}, headers=headers,
                       follow_redirects=False).status_code == 303
    assert redis_client.llen(keys.QUEUE) == 2


# --- Limits -----------------------------------------------------------------------------
# The figures with the default limits (a hall, a flood, one browser) are tests/test_hall.py.

def new_voter(client: TestClient, **request: Any) -> Any:
    """A vote without the voter cookie the client was given before (a cookie-dropping
    script, or a new browser)."""
    client.cookies.clear()
    return client.post("/api/vote", **{"json": {"vote": "cats"}, **request})


def test_a_voter_past_its_limit_gets_429_with_retry_after(
        limited: TestClient, redis_client: redis.Redis) -> None:
    """With 3 votes a minute per voter: a browser's first vote starts its voter, its next 3
    (cookie kept) are queued, the rest get 429 with Retry-After (20 s: the steady rate), on
    the API and the form, and are counted."""
    before = metric(limited, "vote_votes_rejected_total", reason="rate_limited")
    answers = [limited.post("/api/vote", json={"vote": "cats"}) for _ in range(8)]
    answers += [limited.post("/", data={"vote": "dogs"}, follow_redirects=False)
                for _ in range(2)]
    assert [a.status_code for a in answers] == [202] * 4 + [429] * 6
    for answer in answers[4:]:
        assert 1 <= int(answer.headers["retry-after"]) <= 20
    assert "browser" in answers[4].json()["error"] and 'role="alert"' in answers[-1].text
    assert redis_client.llen(keys.QUEUE) == 4
    assert len({answer.json()["voter"] for answer in answers[:4]}) == 1
    assert metric(limited, "vote_votes_rejected_total", reason="rate_limited") == before + 6


def test_new_voters_past_their_addresss_limit_get_429_and_kept_cookies_still_vote(
        limited: TestClient, redis_client: redis.Redis) -> None:
    """With 3 new voters per address at once: a 4th vote without a cookie gets 429 with
    Retry-After and is counted as new_voters_limited; a browser that kept its cookie from
    before still votes."""
    before = metric(limited, "vote_votes_rejected_total", reason="new_voters_limited")
    kept = new_voter(limited).cookies[COOKIE]
    answers = [new_voter(limited) for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 429, 429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 20
    assert "network" in answers[-1].json()["error"]
    with_cookie = limited.post("/api/vote", json={"vote": "dogs"},
                               headers={"cookie": f"{COOKIE}={kept}"})
    assert with_cookie.status_code == 202
    assert metric(limited, "vote_votes_rejected_total", reason="new_voters_limited") == (
        before + 2)
    assert redis_client.llen(keys.QUEUE) == 4


def test_a_cookieless_client_naming_its_vote_ids_counts_as_a_new_voter_each_time(
        limited: TestClient, redis_client: redis.Redis) -> None:
    """Without a cookie, each vote id is a voter of its own (a retry of one is the same
    voter), so every such vote, retries included, counts against the address's new
    voters."""
    answers = [new_voter(limited, json={"vote": "cats", "vote_id": vote_id})
               for vote_id in ("a" * 32, "a" * 32, "b" * 32, "c" * 32)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert answers[0].json()["voter"] == answers[1].json()["voter"] != answers[2].json()["voter"]


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
        limited: TestClient, redis_client: redis.Redis) -> None:
    """A client cannot reset its address's limit by claiming other addresses in
    X-Forwarded-For: only a trusted proxy's header counts."""
    statuses = [new_voter(limited, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
                for n in range(6)]
    assert statuses == [202] * 3 + [429] * 3
    assert redis_client.llen(keys.QUEUE) == 3
    assert redis_client.keys(RATE_KEY_PREFIX + "*") == [(RATE_KEY_PREFIX + "testclient").encode()]


def test_behind_a_trusted_proxy_each_client_address_has_its_own_limit(
        environ: dict[str, str], redis_client: redis.Redis) -> None:
    """From the trusted proxy, X-Forwarded-For is read right to left: the address the proxy
    appended is the client, whatever the client put to its left."""
    with make_client(environ, VOTE_RATE_LIMIT="10", VOTE_NEW_VOTERS_LIMIT="2",
                     VOTE_NEW_VOTERS_BURST="2", client=("10.1.2.3", 40000),
                     FORWARDED_ALLOW_IPS="10.0.0.0/8") as proxy:
        def vote(forwarded_for: str) -> int:
            return int(new_voter(proxy, headers={"X-Forwarded-For": forwarded_for}).status_code)

        assert [vote("203.0.113.1"), vote("203.0.113.1"), vote("203.0.113.1")] == [202, 202, 429]
        assert [vote("203.0.113.2"), vote("203.0.113.2")] == [202, 202]
        # spoofed entries to the left of the real client change nothing
        assert vote("192.0.2.77, 203.0.113.1") == 429
        # a chain of trusted proxies is skipped
        assert vote("203.0.113.3, 10.9.9.9") == 202
    assert redis_client.llen(keys.QUEUE) == 5


def test_the_limits_are_shared_by_every_vote_instance(
        environ: dict[str, str], redis_client: redis.Redis) -> None:
    """Two vote_fn instances on one Redis share an address's new voters and a voter's votes:
    a load balancer spreading the votes does not multiply a limit."""
    limits = {"VOTE_RATE_LIMIT": "2", "VOTE_NEW_VOTERS_LIMIT": "3", "VOTE_NEW_VOTERS_BURST": "3"}
    with make_client(environ, **limits) as first, make_client(environ, **limits) as second:
        statuses = [new_voter(client).status_code
                    for client in (first, second, first, second, first)]
        assert statuses == [202, 202, 202, 429, 429]
        cookie = {"cookie": f"{COOKIE}={VoterIds(parse_keys(SECRET)).sign(VOTER)}"}
        statuses = [client.post("/api/vote", json={"vote": "dogs"}, headers=cookie).status_code
                    for client in (first, second, first)]
        assert statuses == [202, 202, 429]


def test_the_limits_refill_at_their_steady_rate(environ: dict[str, str],
                                                redis_client: redis.Redis) -> None:
    """After a burst, one more vote is allowed once window / limit has passed, for a voter
    and for an address's new voters."""
    with make_client(environ, VOTE_RATE_LIMIT="2", VOTE_RATE_WINDOW_SECONDS="1",
                     VOTE_NEW_VOTERS_LIMIT="1", VOTE_NEW_VOTERS_BURST="1") as client:
        first = client.post("/api/vote", json={"vote": "cats"})  # the address's new voter
        assert new_voter(client).status_code == 429
        cookie = {"cookie": f"{COOKIE}={first.cookies[COOKIE]}"}

        def vote() -> int:
            return int(client.post("/api/vote", json={"vote": "cats"}, headers=cookie
                                   ).status_code)

        assert [vote(), vote(), vote()] == [202, 202, 429]
        wait_until(lambda: vote() == 202, 3, "a voter's vote allowed again")
        wait_until(lambda: new_voter(client).status_code == 202, 3, "a new voter allowed again")
    assert redis_client.llen(keys.QUEUE) == 5


def test_a_limit_of_zero_turns_every_vote_limit_off_and_keeps_no_state(
        environ: dict[str, str], redis_client: redis.Redis) -> None:
    """VOTE_RATE_LIMIT=0: any number of votes, with or without a cookie, whatever the
    new-voter settings say, and no limit keys in Redis (a plain LPUSH)."""
    with make_client(environ, VOTE_RATE_LIMIT="0", VOTE_NEW_VOTERS_LIMIT="1",
                     VOTE_NEW_VOTERS_BURST="1") as client:
        assert {client.post("/api/vote", json={"vote": "cats"}).status_code
                for _ in range(20)} == {202}
        assert {new_voter(client).status_code for _ in range(20)} == {202}
    assert sorted(redis_client.keys("*")) == sorted(
        key.encode() for key in (keys.QUEUE, keys.POLLS, keys.OPEN_POLL))


def test_a_new_voter_limit_of_zero_leaves_the_voter_limit_on(
        environ: dict[str, str], redis_client: redis.Redis) -> None:
    """VOTE_NEW_VOTERS_LIMIT=0: new voters are not limited (no address key); a voter is."""
    with make_client(environ, VOTE_RATE_LIMIT="2", VOTE_NEW_VOTERS_LIMIT="0") as client:
        assert {new_voter(client).status_code for _ in range(20)} == {202}
        assert [client.post("/api/vote", json={"vote": "cats"}).status_code
                for _ in range(3)] == [202, 202, 429]
    assert redis_client.keys(RATE_KEY_PREFIX + "*") == []


def test_the_default_limits() -> None:
    """Unset: 10 votes a minute per voter, at once or steady; 2,000 new voters at once per
    address and 1,000 a minute after that (SECURITY.md, tests/test_hall.py)."""
    settings = VoteSettings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "VOTE_SECRET": SECRET})
    assert settings.limits == Limits(RateLimit(10, 10, 60), RateLimit(1_000, 2_000, 60))


@pytest.mark.parametrize(("name", "value"), [
    ("VOTE_RATE_LIMIT", "-1"), ("VOTE_RATE_LIMIT", "ten"), ("VOTE_RATE_WINDOW_SECONDS", "0"),
    ("VOTE_NEW_VOTERS_LIMIT", "-1"), ("VOTE_NEW_VOTERS_LIMIT", "1.5"),
    ("VOTE_NEW_VOTERS_BURST", "0"), ("VOTE_NEW_VOTERS_BURST", "100001"),
])
def test_a_bad_limit_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        VoteSettings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "VOTE_SECRET": SECRET,
                               name: value})


def test_ipv6_clients_are_limited_by_their_64() -> None:
    """Addresses of one /64 share a key; an IPv4-mapped address is its IPv4 address."""
    assert rate_key("2001:db8:1:2::1") == rate_key("2001:db8:1:2:ffff::9")
    assert rate_key("2001:db8:1:2::1") != rate_key("2001:db8:1:3::1")
    assert rate_key("::ffff:192.0.2.1") == rate_key("192.0.2.1")
    assert all(rate_key(a).startswith("{votes}:") for a in ("192.0.2.1", "::1", "junk"))


@pytest.mark.parametrize(("peer", "forwarded_for", "client"), [
    ("203.0.113.5", "192.0.2.1", "203.0.113.5"),  # untrusted peer: header ignored
    ("127.0.0.1", "192.0.2.1", "192.0.2.1"),
    ("127.0.0.1", "192.0.2.1, 198.51.100.2", "198.51.100.2"),  # rightmost untrusted
    ("127.0.0.1", "198.51.100.2, ::1, 127.0.0.1", "198.51.100.2"),  # trusted hops skipped
    ("127.0.0.1", "127.0.0.2, 127.0.0.1", "127.0.0.2"),
    ("127.0.0.1", "192.0.2.1:5555", "192.0.2.1"),
    ("127.0.0.1", "[2001:db8::1]:5555", "2001:db8::1"),
    ("127.0.0.1", "2001:DB8:0::1", "2001:db8::1"),
    ("127.0.0.1", "", "127.0.0.1"),
    ("127.0.0.1", " , ,", "127.0.0.1"),
    ("127.0.0.1", ":80, []", "127.0.0.1"),  # entries with no host are skipped
    ("127.0.0.1", "192.0.2.1, :80", "192.0.2.1"),
    ("127.0.0.1", "unknown", "unknown"),
    ("127.0.0.1", "x" * 300, "x" * 64),
])
def test_the_client_address_through_trusted_proxies(peer: str, forwarded_for: str,
                                                    client: str) -> None:
    proxies = TrustedProxies(parse_trusted("127.0.0.1,::1"))
    scope = {"client": (peer, 1), "scheme": "http",
             "headers": [(b"x-forwarded-for", forwarded_for.encode())]}
    assert proxies.peer(scope).address == client


@pytest.mark.parametrize("value", ["*", "10.0.0.0/33", "localhost", "1.2.3.4,,5.6.7.8"])
def test_a_bad_proxy_list_is_named(value: str) -> None:
    with pytest.raises(SettingsError, match="FORWARDED_ALLOW_IPS"):
        VoteSettings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "VOTE_SECRET": SECRET,
                               "FORWARDED_ALLOW_IPS": value})


def test_none_trusts_no_proxy() -> None:
    proxies = TrustedProxies(parse_trusted("none"))
    scope = {"client": ("127.0.0.1", 1), "scheme": "http",
             "headers": [(b"x-forwarded-for", b"192.0.2.1"), (b"x-forwarded-proto", b"https")]}
    assert proxies.peer(scope).address == "127.0.0.1" and not proxies.peer(scope).https


# --- Headers ----------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"), ("POST", "/api/vote"), ("GET", "/static/vote.css"), ("GET", "/nowhere"),
    ("GET", "/healthz"), ("GET", "/openapi.json"),
])
def test_every_vote_response_carries_the_security_headers(
        client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"vote": "cats"} if method == "POST" else None)
    assert response.status_code < 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers  # plain HTTP
    assert len(response.headers.get_list("content-security-policy")) == 1


def test_the_page_keeps_its_own_policy(client: TestClient) -> None:
    policy = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "form-action 'self'" in policy


def test_the_openapi_description_describes_the_vote(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "/api/vote" in document["paths"] and "OptionId" in document["components"]["schemas"]


# --- Nothing counted --------------------------------------------------------------------

def test_no_bad_vote_changes_the_tallies(environ: dict[str, str], function_env: dict[str, str],
                                         redis_client: redis.Redis, db: Conn) -> None:
    """End to end: one good vote is counted; then every bad input above (and cross-site
    posts and a burst past the limit) goes in, the real drain runs, and the tallies in
    PostgreSQL are exactly what they were."""
    with make_client(environ, VOTE_RATE_LIMIT="1") as client:
        assert client.post("/api/vote", json={"vote": "cats"}).status_code == 202
        drain(function_env)
        before = tally(db)
        assert before == {"cats": 1}
        statuses = []
        for _, body, headers, _ in BAD_API_BODIES:
            statuses.append(client.post("/api/vote", content=body, headers=headers).status_code)
        for _, body, headers, _ in BAD_FORM_BODIES:
            statuses.append(client.post("/", content=body, headers=headers,
                                        follow_redirects=False).status_code)
        for _, headers in CROSS_SITE:
            statuses.append(client.post("/api/vote", json={"vote": "dogs"},
                                        headers=headers).status_code)
        statuses += [client.post("/api/vote", json={"vote": "dogs"}).status_code
                     for _ in range(3)]  # one left in the limit, then 429s
        assert statuses.count(202) == 1 and max(s for s in statuses if s != 202) < 500
        assert all(400 <= s < 500 for s in statuses if s != 202)
        drain(function_env)
    assert tally(db) == {"dogs": 1}  # the one accepted vote replaced the voter's earlier one


def test_the_worker_sets_aside_every_bad_queue_entry(
        function_env: dict[str, str], redis_client: redis.Redis, db: Conn) -> None:
    """Whatever lands in the queue, the drain never fails on it: bad entries go to the
    dead-letter list, the good ones around them count, and nothing else changes."""
    good = make_votes(voters=4, changes=0)
    vote = {"id": "d" * 32, "voter": "voter-000000000099", "vote": "cats", "ts": 5}
    bad: list[bytes] = [
        b"", b" ", b"\x00", b"\xff\xfe\xfd", b"null", b"[]", b'"vote"', b"1e999",
        b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b"{" + b'"x":1,' * 10000 + b'"y":2}', b"x" * 100_000,
        *(json.dumps({**vote, **change}).encode() for change in [
            {"vote": "Cats"}, {"vote": " cats"}, {"vote": "c\u0430ts"}, {"vote": "cats\u0000"},
            {"vote": "cats\r\n"}, {"vote": None}, {"vote": ["cats"]}, {"vote": 1},
            {"id": "D" * 32}, {"id": 1}, {"id": "d" * 31}, {"voter": "short"},
            {"voter": "voter\n0000000000099"}, {"voter": None}, {"ts": "5"}, {"ts": 5.5},
            {"ts": True}, {"ts": -1}, {"ts": 0}, {"ts": 2**53}, {"ts": None},
        ]),
        json.dumps({k: v for k, v in vote.items() if k != "voter"}).encode(),
    ]
    push(redis_client, [*good[:2], *bad, *good[2:]])
    drain(function_env)
    assert tally(db) == expected_tally(good)
    assert redis_client.llen(keys.DEAD_LETTERS) == len(bad)
    assert redis_client.llen(keys.QUEUE) == 0


# --- The stream -------------------------------------------------------------------------

GARBAGE_EVENT_IDS: list[bytes] = [
    b"", b"abc", b"-1", b"0", b"99999999999999999999999999", b"1e309", b"NaN", b"1.5",
    b"9" * 4000, b"\xff\xfe", "\u00e9t\u00e9".encode("latin-1"), b"' OR 1=1 --",
    b"{{7*7}}", b"../../etc/passwd",
]


@pytest.fixture
def result(function_env: dict[str, str], db: Conn, tmp_path: Path) -> Iterator[FunctionProcess]:
    env = {**function_env, "STREAM_MAX_PER_CLIENT": "2", "STREAM_PING_SECONDS": "1"}
    with FunctionProcess("result", env, tmp_path) as process:
        yield process


@pytest.mark.anyio
async def test_garbage_last_event_id_is_ignored_and_the_stream_starts_with_the_snapshot(
        result: FunctionProcess) -> None:
    """Whatever Last-Event-ID says, the stream answers 200 and its first event is the
    full current results."""
    async with httpx.AsyncClient(base_url=result.url, timeout=10) as client:
        for value in GARBAGE_EVENT_IDS:
            async with client.stream("GET", "/stream",
                                     headers=[(b"Last-Event-ID", value)]) as response:
                assert response.status_code == 200, value
                first = await anext(events(response))
                document = json.loads(first.data)
                assert first.id == str(document["version"])
                assert [o["id"] for o in document["options"]] == ["cats", "dogs"]


def test_header_bytes_that_http_forbids_never_get_a_5xx(result: FunctionProcess) -> None:
    """NUL and a bare CR in Last-Event-ID are refused by the server's HTTP parser with a
    4xx, before the app; an obsolete folded line is refused or ignored, never a 5xx."""
    for value, refused in ((b"1\x00", True), (b"1\rX: y", True), (b"1\r\n x", False)):
        with socket.create_connection(("127.0.0.1", result.port), timeout=5) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nLast-Event-ID: " + value +
                         b"\r\nConnection: close\r\n\r\n")
            status_line = sock.recv(200).split(b"\r\n", 1)[0]
        assert status_line[:10] in (b"HTTP/1.1 4", b"HTTP/1.1 2"), (value, status_line)
        assert status_line.startswith(b"HTTP/1.1 4") or not refused, (value, status_line)


@pytest.mark.anyio
async def test_streams_per_client_are_capped_and_a_closed_stream_frees_its_slot(
        result: FunctionProcess) -> None:
    """STREAM_MAX_PER_CLIENT=2: a third stream from one address gets 429 + Retry-After,
    another address (through the trusted local proxy) still gets one, and closing a
    stream lets the first address open one again."""
    async with httpx.AsyncClient(base_url=result.url, timeout=10) as client:
        async with client.stream("GET", "/stream") as one, \
                client.stream("GET", "/stream") as two:
            assert (one.status_code, two.status_code) == (200, 200)
            await anext(events(one))
            refused = await client.get("/stream")
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
            assert refused.json()["error"]
            other = {"X-Forwarded-For": "192.0.2.44"}
            async with client.stream("GET", "/stream", headers=other) as elsewhere:
                assert elsewhere.status_code == 200
        with anyio.fail_after(5):
            while True:
                async with client.stream("GET", "/stream") as again:
                    if again.status_code == 200:
                        break
                await anyio.sleep(0.05)
        metrics = (await client.get("/metrics")).text
        assert metric_value(metrics, "result_sse_refused_total", reason="client_full") >= 1


@pytest.mark.anyio
async def test_result_responses_carry_the_security_headers(result: FunctionProcess) -> None:
    async with httpx.AsyncClient(base_url=result.url, timeout=10) as client:
        for path in ("/", "/api/results", "/api/receipts/x", "/openapi.json"):
            response = await client.get(path)
            assert response.status_code < 500
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert "strict-transport-security" not in response.headers
        # behind the Function URL the adapter (a trusted local peer) says it was HTTPS
        response = await client.get("/api/results", headers={"X-Forwarded-Proto": "https"})
        assert response.headers["strict-transport-security"].startswith("max-age=")


@pytest.mark.anyio
async def test_a_receipt_with_odd_digits_is_a_400(result: FunctionProcess) -> None:
    """Digits that are not ASCII (superscripts, other scripts) are refused, not a 500."""
    async with httpx.AsyncClient(base_url=result.url, timeout=10) as client:
        for ts in ("\u00b2", "\u0663", "1\u00b9"):
            response = await client.get(f"/api/receipts/{'a' * 32}",
                                        params={"voter": "voter-000000000001", "ts": ts})
            assert response.status_code == 400, ts
