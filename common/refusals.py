"""A request refused: its status, a sentence that tells the person (or program) what to do,
and when to retry, if ever. Each function raises these for its own causes and renders them
as JSON or as its page; the edge answers what nobody handled (common/edge.py)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

from common.edge import json_answer
from common.headers import RawHeaders


class Refused(Exception):
    def __init__(self, status: int, label: str, reason: str, retry_after_s: int | None = None,
                 headers: RawHeaders | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.label = label  # the reason in the function's metrics
        self.reason = reason
        self.retry_after_s = retry_after_s
        self._headers = headers or []

    def headers(self) -> RawHeaders:
        if self.retry_after_s is None:
            return list(self._headers)
        return [*self._headers, (b"retry-after", str(self.retry_after_s).encode())]

    def as_json(self, headers: Mapping[str, str] | None = None) -> Response:
        response = json_answer({"error": self.reason}, self.status, headers)
        response.raw_headers += self.headers()
        return response
