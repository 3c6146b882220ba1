"""result_fn: the results page, the results API and the live SSE stream."""
