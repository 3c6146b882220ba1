"""How the room joins: the vote page's address (VOTE_URL), shown as text and as a QR code
on the results page and the projector screen. ``GET /join.svg`` serves the code, made by
segno on the first request (its import costs ~45 ms, which no cold start should pay) and
then kept: the address is a setting, so the image changes only with a new process.

The code is drawn dark on light whatever the page's colour scheme, with a quiet zone of
four modules, as phone cameras expect.
"""

from __future__ import annotations

import functools
import hashlib
import io

from starlette.requests import Request
from starlette.responses import Response

from common.refusals import Refused

PATH = "/join.svg"
# Browsers may reuse it for an hour, then ask again with its ETag.
CACHE = "public, max-age=3600"


class JoinCode:
    def __init__(self, vote_url: str) -> None:
        self.url = vote_url  # "" when VOTE_URL is unset: nothing to join

    @property
    def shown(self) -> str:
        """The address as people read and type it: without the scheme."""
        return self.url.partition("://")[2]

    @functools.cached_property
    def svg(self) -> bytes:
        import segno  # only here: see the module's docstring

        out = io.BytesIO()
        segno.make(self.url, error="m", micro=False).save(
            out, kind="svg", border=4, dark="#000", light="#fff", xmldecl=False,
            omitsize=True, svgclass=None, lineclass=None, title=f"QR code: {self.url}")
        return out.getvalue()

    @functools.cached_property
    def etag(self) -> str:
        return f'"{hashlib.sha256(self.svg).hexdigest()[:16]}"'


async def join_svg(request: Request) -> Response:
    code: JoinCode = request.state.join
    if not code.url:
        return Refused(404, "no_vote_url", "no join code: VOTE_URL is not set").as_json()
    headers = {"Cache-Control": CACHE, "ETag": code.etag}
    if code.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(code.svg, media_type="image/svg+xml", headers=headers)
