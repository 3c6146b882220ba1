"""A function's static files, named by their content so that browsers may keep them, and
the templates of its pages, which link them so.

A page links each file as ``/static/<name>?v=<digest>`` (``Assets.url``), the digest being
the start of the file's SHA-256: what that address answers never changes, so it may be
kept for a year without asking again, and a new deployment's file has a new address. Any
other address of a static file (an old page's, one typed by hand) answers ``no-cache``: the
browser asks again each time with the ETag and Last-Modified that Starlette's StaticFiles
sends, and gets a 304 while nothing changed. Compression is the edge's, for these as for
every other answer (common/edge.py).

Every page extends ``_page.html`` (common/templates/): the same head, icon and colour
scheme on each function's pages, which list their styles and scripts. What the pages of
both functions run is in common/static/, which each function serves beside its own files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import parse_qs

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Scope

PREFIX = "/static"
COMMON_TEMPLATES = Path(__file__).parent / "templates"
KEEP = "public, max-age=31536000, immutable"
ASK_AGAIN = "no-cache"


class Assets(StaticFiles):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, packages=[("common", "static")])
        self._digests: dict[str, str] = {}  # files do not change while the process runs

    def digest(self, name: str) -> str:
        if (digest := self._digests.get(name)) is None:
            path, found = self.lookup_path(name)
            if found is None:
                raise LookupError(f"no static file {name!r}")
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
            self._digests[name] = digest
        return digest

    def url(self, name: str) -> str:
        """The address a page links the file by (without the app's root path)."""
        return f"{PREFIX}/{name}?v={self.digest(name)}"

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        name = Path(self.get_path(scope)).as_posix()
        asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [""])[0]
        response.headers["Cache-Control"] = KEEP if asked == self.digest(name) else ASK_AGAIN
        return response


class Pages:
    """A function's pages: its templates (``<package>/templates``, then the common ones),
    which link static files with ``{{ asset("name") }}``, and its static files
    (``<package>/static``, then common/static), served by ``route`` under PREFIX."""

    def __init__(self, package: Path) -> None:
        self.assets = Assets(package / "static")
        self.templates = Jinja2Templates(directory=[package / "templates", COMMON_TEMPLATES])
        self.templates.env.globals["asset"] = self.assets.url
        self.route = Mount(PREFIX, self.assets, name="static")
