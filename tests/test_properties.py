"""Properties that must hold for every input, checked with hypothesis: decoding a vote
event from the queue, reading a vote from a request body, signing and verifying voter
cookies, and finding the client address behind proxies."""

from __future__ import annotations

import hashlib
import string

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from itsdangerous import Signer
from starlette.datastructures import Headers

from common.event import (
    POLL_ACTIONS,
    InvalidEvent,
    PollEvent,
    VoteEvent,
    decode,
    is_vote_id,
    is_voter_id,
)
from common.headers import request_headers
from common.polls import FIRST, is_poll_id
from common.proxies import TrustedProxies, parse_trusted
from common.refusals import Refused
from vote_fn.ballot import api_vote, checked_option, form_vote
from vote_fn.origin import cross_site_reason
from vote_fn.ratelimit import RATE_KEY_PREFIX, rate_key
from vote_fn.voter import SigningKey, VoterIds, parse_keys

from .conftest import OPTIONS, POLLS

# No example database: the suite leaves nothing behind in the work tree.
bounded = settings(database=None, deadline=None, max_examples=200,
                   suppress_health_check=[HealthCheck.too_slow])

vote_ids = st.text("0123456789abcdef", min_size=32, max_size=32)
voter_ids = st.text(string.ascii_letters + string.digits + "_-", min_size=16, max_size=64)
option_ids = st.sampled_from(OPTIONS.ids)
timestamps = st.integers(min_value=1, max_value=2**53 - 1)
events = st.builds(VoteEvent, vote_ids, voter_ids, option_ids, timestamps, st.just(FIRST))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
kids = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=16)
secrets = st.text(st.characters(exclude_characters=",", exclude_categories=["Cs"]),
                  min_size=16, max_size=40).map(str.strip).filter(lambda s: len(s) >= 16)


@st.composite
def key_sets(draw: st.DrawFn) -> tuple[SigningKey, ...]:
    """One plain secret, or one to three kid:secret keys with distinct ids."""
    if draw(st.booleans()):
        return (SigningKey("", draw(secrets)),)
    ids = draw(st.lists(kids, min_size=1, max_size=3, unique=True))
    return tuple(SigningKey(kid, draw(secrets)) for kid in ids)


# --- The vote event ---------------------------------------------------------------------

@bounded
@given(events)
def test_an_encoded_event_decodes_to_itself(event: VoteEvent) -> None:
    assert decode(event.encode(), POLLS) == event


@bounded
@given(events, st.dictionaries(st.text(max_size=10).filter(
    lambda k: k not in ("id", "voter", "vote", "ts", "poll", "type")), json_values,
    max_size=5))
def test_unknown_fields_of_an_event_are_ignored(event: VoteEvent,
                                                extra: dict[str, object]) -> None:
    document = {**orjson.loads(event.encode()), **extra}
    assert decode(orjson.dumps(document), POLLS) == event


def assert_valid_or_invalid(raw: bytes) -> None:
    """decode either returns a fully valid event or raises InvalidEvent: nothing else."""
    try:
        event = decode(raw, POLLS)
    except InvalidEvent as error:
        assert str(error)
        return
    if isinstance(event, PollEvent):
        assert event.action in POLL_ACTIONS and event.poll and 0 < event.at_us < 2**53
        return
    assert is_vote_id(event.vote_id) and is_voter_id(event.voter)
    assert event.option in OPTIONS and 0 < event.accepted_ms < 2**53
    assert type(event.accepted_ms) is int


@bounded
@given(st.binary(max_size=300))
def test_any_bytes_decode_to_a_valid_event_or_a_reason(raw: bytes) -> None:
    assert_valid_or_invalid(raw)


@bounded
@given(json_values)
def test_any_json_decodes_to_a_valid_event_or_a_reason(value: object) -> None:
    assert_valid_or_invalid(orjson.dumps(value))


@bounded
@given(events, st.sampled_from(["id", "voter", "vote", "ts"]), json_values)
def test_an_event_with_one_field_changed_is_still_valid_or_refused(
        event: VoteEvent, field: str, value: object) -> None:
    document = orjson.loads(event.encode())
    document[field] = value
    assert_valid_or_invalid(orjson.dumps(document))


# --- A vote from a request body ---------------------------------------------------------

@bounded
@given(st.binary(max_size=200) | json_values.map(orjson.dumps))
def test_any_json_body_is_a_known_option_or_a_4xx(body: bytes) -> None:
    """Read and checked against the poll's options, as casting does."""
    try:
        ballot = api_vote(body)
        option = checked_option(ballot.option, OPTIONS)
    except Refused as bad:
        assert 400 <= bad.status < 500 and bad.reason
        return
    assert option in OPTIONS and (ballot.vote_id is None or is_vote_id(ballot.vote_id))
    assert ballot.poll is None or is_poll_id(ballot.poll)


@bounded
@given(st.binary(max_size=200) | st.text(max_size=60).map(str.encode))
def test_any_form_body_is_a_known_option_or_a_4xx(body: bytes) -> None:
    try:
        option = checked_option(form_vote(body).option, OPTIONS)
    except Refused as bad:
        assert 400 <= bad.status < 500 and bad.reason
        return
    assert option in OPTIONS


@bounded
@given(st.sampled_from(["vote", "vote_id", "poll"]), option_ids, option_ids, st.booleans())
def test_a_body_naming_a_field_twice_is_refused(name: str, first: str, second: str,
                                                 spaced: bool) -> None:
    colon = " : " if spaced else ":"
    body = f'{{"{name}"{colon}"{first}","vote":"cats","{name}"{colon}"{second}"}}'.encode()
    with pytest.raises(Refused) as refused:
        api_vote(body)
    assert refused.value.status == 400


@bounded
@given(st.lists(st.tuples(st.sampled_from([b"host", b"cookie", b"origin", b"content-type"]),
                          st.binary(max_size=20))))
def test_request_headers_answer_as_starlettes_headers_do(raw: list[tuple[bytes, bytes]]) -> None:
    """vote_fn reads a request's headers once (common/headers.py): each name must read as
    Starlette's Headers.get reads it, the first of its kind."""
    headers = request_headers({"headers": raw})
    for name in ("host", "cookie", "origin", "content-type", "sec-fetch-site"):
        assert headers.get(name) == Headers(raw=raw).get(name)


@bounded
@given(st.dictionaries(st.sampled_from(["origin", "sec-fetch-site", "host"]),
                       st.text(st.characters(max_codepoint=255), max_size=40)))
def test_the_cross_site_check_never_fails(headers: dict[str, str]) -> None:
    reason = cross_site_reason(Headers(headers))
    assert reason is None or isinstance(reason, str)
    if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
        assert reason is not None


# --- Voter cookies ----------------------------------------------------------------------

@bounded
@given(st.lists(kids, min_size=1, max_size=4, unique=True), st.data())
def test_a_vote_secret_of_kid_secret_entries_reads_back(ids: list[str],
                                                        data: st.DataObject) -> None:
    keys = tuple(SigningKey(kid, data.draw(secrets)) for kid in ids)
    assert parse_keys(",".join(f"{key.kid}:{key.secret}" for key in keys)) == keys


@bounded
@given(key_sets(), voter_ids)
def test_a_signed_voter_verifies_as_itself(keys: tuple[SigningKey, ...], voter: str) -> None:
    voters = VoterIds(keys)
    cookie = voters.sign(voter)
    assert voters.verify(cookie) == voter and voters.is_current(cookie)


@bounded
@given(key_sets(), voter_ids)
def test_cookies_are_itsdangerous_signatures(keys: tuple[SigningKey, ...], voter: str) -> None:
    """vote_fn computes the HMAC its own (faster) way: the cookies must stay exactly what
    itsdangerous's own Signer makes and verifies, so that cookies already out there verify."""
    first = keys[0]
    reference = Signer(first.secret, salt="voter-id", digest_method=hashlib.sha256)
    value = f"{first.kid}.{voter}" if first.kid else voter
    cookie = VoterIds(keys).sign(voter)
    assert cookie == reference.sign(value).decode()
    assert VoterIds(keys).verify(reference.sign(value).decode()) == voter


@bounded
@given(key_sets(), voter_ids, st.data())
def test_a_tampered_cookie_never_names_another_voter(
        keys: tuple[SigningKey, ...], voter: str, data: st.DataObject) -> None:
    """Any change to a cookie makes it fail, or (where base64 has spare bits in its last
    character) still name the same voter: it never yields a different voter."""
    voters = VoterIds(keys)
    cookie = voters.sign(voter)
    assert voters.verify(cookie) == voter  # remembered: the tampered copy must not ride on it
    position = data.draw(st.integers(0, len(cookie) - 1))
    replacement = data.draw(st.characters(exclude_categories=["Cs"]))
    assume(replacement != cookie[position])
    tampered = cookie[:position] + replacement + cookie[position + 1:]
    assert voters.verify(tampered) in (None, voter)


@bounded
@given(key_sets(), st.text(max_size=300))
def test_any_cookie_text_verifies_to_nothing_or_a_voter_id(
        keys: tuple[SigningKey, ...], cookie: str) -> None:
    verified = VoterIds(keys).verify(cookie)
    assert verified is None or is_voter_id(verified)


@bounded
@given(key_sets(), secrets, voter_ids)
def test_keys_rotate_without_losing_voters(old: tuple[SigningKey, ...], new_secret: str,
                                           voter: str) -> None:
    """A cookie signed under the old keys verifies once a new key is put in front of them
    (a plain secret becomes a kid:secret entry), is then due to be signed again, and does
    not verify under the new key alone."""
    assume(all(key.secret != new_secret and key.kid != "new" for key in old))
    cookie = VoterIds(old).sign(voter)
    new = SigningKey("new", new_secret)
    during = VoterIds((new, *(SigningKey(key.kid or "old", key.secret) for key in old)))
    assert during.verify(cookie) == voter
    assert not during.is_current(cookie)
    assert during.verify(during.sign(voter)) == voter
    assert VoterIds((new,)).verify(cookie) is None


@bounded
@given(key_sets(), vote_ids)
def test_the_voter_for_a_vote_id_is_stable_and_valid(keys: tuple[SigningKey, ...],
                                                     vote_id: str) -> None:
    voter = VoterIds(keys).for_vote(vote_id)
    assert is_voter_id(voter) and VoterIds(keys).for_vote(vote_id) == voter


# --- The client address -----------------------------------------------------------------

header_values = st.binary(max_size=80)


@bounded
@given(st.sampled_from(["127.0.0.1", "203.0.113.9", "testclient"]), header_values,
       header_values)
def test_the_client_address_is_the_peer_or_from_its_header(
        peer: str, forwarded_for: bytes, forwarded_proto: bytes) -> None:
    proxies = TrustedProxies(parse_trusted("127.0.0.1,::1"))
    scope = {"client": (peer, 1), "scheme": "http",
             "headers": [(b"x-forwarded-for", forwarded_for),
                         (b"x-forwarded-proto", forwarded_proto)]}
    found = proxies.peer(scope)
    if peer != "127.0.0.1":
        assert found.address == peer and not found.https
    assert 0 < len(found.address) <= 64 or found.address == peer
    assert rate_key(found.address).startswith(RATE_KEY_PREFIX)


@bounded
@given(st.text(max_size=80) | st.ip_addresses().map(str))
def test_any_address_has_a_rate_key_in_the_queue_slot(address: str) -> None:
    assert rate_key(address).startswith(RATE_KEY_PREFIX)
