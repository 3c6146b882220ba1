"""worker_fn: the scheduled drain that moves votes from Redis into PostgreSQL."""
