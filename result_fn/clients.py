"""How many live streams each client address holds open in this process, up to a cap.

One address opening stream after stream would take every subscriber slot of the process
(STREAM_MAX_SUBSCRIBERS) from everyone else. The count is per process, like that cap: on
Lambda, where each stream is an invocation of its own, the function's reserved
concurrency is what bounds them (SECURITY.md).
"""

from __future__ import annotations


class StreamsPerClient:
    def __init__(self, cap: int) -> None:
        self._cap = cap  # 0: no cap
        self._open: dict[str, int] = {}

    def take(self, client: str) -> bool:
        """Count one more stream for ``client``, unless it holds the most already."""
        held = self._open.get(client, 0)
        if self._cap and held >= self._cap:
            return False
        self._open[client] = held + 1
        return True

    def give_back(self, client: str) -> None:
        held = self._open.pop(client, 0) - 1
        if held > 0:
            self._open[client] = held
