"""A function's OpenAPI description, served at ``/openapi.json``.

Each function keeps its description in ``openapi.yaml`` beside its code. Where requests name
an option, the valid ids are those of the poll open now, so the schema named ``OptionId``
gets them as its ``enum`` when served. The file is read on the first request, not at
start-up: no cold start pays for it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PATH = "/openapi.json"
OptionIds = Callable[[Request], tuple[str, ...]]


def load(source: Path, option_ids: tuple[str, ...] = ()) -> dict[str, Any]:
    import yaml  # only here: a dependency of uvicorn[standard], needed by nothing else

    document: dict[str, Any] = yaml.safe_load(source.read_text())
    if option_ids:
        document["components"]["schemas"]["OptionId"]["enum"] = list(option_ids)
    return document


@functools.lru_cache(maxsize=16)  # one description per file and open poll
def _served(source: Path, option_ids: tuple[str, ...]) -> bytes:
    return orjson.dumps(load(source, option_ids))


def route(source: Path, option_ids: OptionIds | None = None) -> Route:
    async def openapi(request: Request) -> Response:
        ids = option_ids(request) if option_ids else ()
        return Response(_served(source, ids), media_type="application/json")

    return Route(PATH, openapi, methods=["GET"])
