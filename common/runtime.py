"""Process-wide tuning applied once a function has started."""

from __future__ import annotations

import gc

# Python's default young-generation threshold (700 allocations) runs a collection every
# few hundred requests or events. The objects this code allocates in bulk hold no cycles,
# so a higher threshold only delays reclaiming garbage that reference counting misses.
#
# result_fn: with thousands of SSE subscribers the collections cost as much as the work
# itself. At 5,000 subscribers and 10 changes/s, raising it (and freezing the objects made
# at start-up, which live forever) cut p99 from ~280 ms to ~170 ms and CPU from ~98 % to
# ~72 %.
STREAMING_THRESHOLD = 20_000
# worker_fn: a drain holds up to 200,000 decoded votes, a tuple each, and the collections
# traverse them again and again: decoding took 2.67 µs a vote at the default, 2.48 µs at
# 20,000, 1.95 µs at 100,000 and 1.91 µs with no collection at all.
DRAINING_THRESHOLD = 100_000


def tune_gc(young_threshold: int) -> None:
    # No gc.collect() first: after start-up it finds ~50 unreachable objects to free, and
    # it cost ~22 ms of the cold start (a full pass over the ~50,000 objects the imports
    # made).
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
