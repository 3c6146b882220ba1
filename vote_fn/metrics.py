"""Prometheus metrics of vote_fn (served at /metrics with the HTTP metrics).

Counts only: no label carries a voter or a choice.
"""

from prometheus_client import Counter

ACCEPTED = Counter("vote_votes_accepted", "Votes acknowledged after Redis held them")
REJECTED = Counter("vote_votes_rejected", "Votes refused, by reason", ["reason"])
