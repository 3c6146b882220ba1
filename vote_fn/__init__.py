"""vote_fn: the vote page and API; each vote is pushed onto the Redis queue."""
