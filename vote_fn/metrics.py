"""Prometheus metrics of vote_fn (served at /metrics with the HTTP metrics).

Counts only: no label carries a voter or a choice.
"""

from prometheus_client import Counter

ACCEPTED = Counter("vote_votes_accepted", "Votes acknowledged after Redis held them")
# reason: content_type, too_large, malformed, unknown_field, unknown_option, bad_vote_id
# (the body),
# cross_site (403), rate_limited and new_voters_limited (429), redis_unavailable (503)
REJECTED = Counter("vote_votes_rejected", "Votes refused, by reason", ["reason"])
