"""A function's OpenAPI description, served at ``/openapi.json``.

Each function keeps its description in ``openapi.yaml`` beside its code. The option ids
are settings, so the schema named ``OptionId`` gets them as its ``enum`` when served. The
file is read on the first request, not at start-up: no cold start pays for it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.settings import Options

PATH = "/openapi.json"


def load(source: Path, options: Options) -> dict[str, Any]:
    import yaml  # only here: a dependency of uvicorn[standard], needed by nothing else

    document: dict[str, Any] = yaml.safe_load(source.read_text())
    document["components"]["schemas"]["OptionId"]["enum"] = list(options.ids)
    return document


@functools.cache  # one description per file and options: a process serves one of each
def _served(source: Path, options: Options) -> bytes:
    return orjson.dumps(load(source, options))


def route(source: Path) -> Route:
    """The route; the options come from the function's settings in its lifespan state."""

    async def openapi(request: Request) -> Response:
        return Response(_served(source, request.state.settings.options),
                        media_type="application/json")

    return Route(PATH, openapi, methods=["GET"])
