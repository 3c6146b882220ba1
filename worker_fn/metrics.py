"""Prometheus metrics of the drain (served at /metrics with the HTTP metrics).

A "batch" here is one transaction: it applies every claim decoded while the one before
ran (worker_fn/prefetch.py); the names stay as dashboards know them.
"""

from prometheus_client import Counter, Gauge, Histogram

BATCHES = Counter("worker_drain_batches",
                  "Transactions committed to PostgreSQL (one or more claims each)")
CLAIMED = Counter("worker_votes_claimed", "Queue entries claimed (valid or not)")
APPLIED = Counter("worker_votes_applied", "Ballots changed by committed transactions")
DEAD_LETTERED = Counter("worker_dead_letters", "Queue entries moved to the dead-letter list")
FAILURES = Counter("worker_postgres_failures",
                   "PostgreSQL errors after which the claims held went back to the queue")
QUEUE_DEPTH = Gauge("worker_queue_depth", "Votes left in the queue at the last claim")
BATCH_SECONDS = Histogram("worker_batch_duration_seconds",
                          "Time to apply and commit one transaction",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                   2.5, 5))
LAG_SECONDS = Histogram("worker_vote_lag_seconds",
                        "From acceptance by vote_fn to commit, for the oldest vote of each "
                        "transaction",
                        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
