"""The presenter's admin API on vote_fn (vote_fn/admin.py), as the tests call it, and the
local profile with that API on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx

from support.local_stack import LocalStack

TOKEN = "presenter-token-of-the-tests-0123"  # ADMIN_TOKEN: 24+ characters


@dataclass(frozen=True)
class Presenter:
    vote_url: str
    token: str = TOKEN

    def _post(self, path: str, document: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(f"{self.vote_url}{path}", json=document, timeout=10,
                              headers={"Authorization": f"Bearer {self.token}"})
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def create(self, question: str, labels: Sequence[str], results: str = "live") -> str:
        """A new poll (closed), its options ``o1``, ``o2``...; its id."""
        options = [{"id": f"o{n}", "label": label} for n, label in enumerate(labels, 1)]
        created = self._post("/api/admin/polls", {"question": question, "options": options,
                                                  "results": results})
        return str(created["poll"])

    def open(self, poll: str) -> None:
        self._post(f"/api/admin/polls/{poll}/open")

    def close(self, poll: str) -> None:
        self._post(f"/api/admin/polls/{poll}/close")


def presenter_stack(folder: Path) -> LocalStack:
    """The local profile with the admin API on (ADMIN_TOKEN=TOKEN), its data in ``folder``."""
    return LocalStack.create(folder / "data", ADMIN_TOKEN=TOKEN)
