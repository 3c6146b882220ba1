"""A function's OpenAPI description, served at ``/openapi.json``.

Each function keeps its description in ``openapi.yaml`` beside its code. The option ids
are settings, so the schema named ``OptionId`` gets them as its ``enum`` when served. The
file is read on the first request, not at start-up: no cold start pays for it.
"""

from __future__ import annotations

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


def route(source: Path, options: Options) -> Route:
    served: list[bytes] = []  # filled once, on the first request

    async def openapi(request: Request) -> Response:
        if not served:
            served.append(orjson.dumps(load(source, options)))
        return Response(served[0], media_type="application/json")

    return Route(PATH, openapi, methods=["GET"])
