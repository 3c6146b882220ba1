"""Security headers on every response of a function.

A response that sets its own header (a page's Content-Security-Policy) keeps it; the
others get a policy that allows nothing, which is right for JSON, the stream and the
static files. HSTS is sent only when the client's connection is HTTPS, as seen through
the trusted proxies: a browser ignores it over plain HTTP anyway.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.proxies import TrustedProxies

BASE_HEADERS = (
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
)
# One year; no includeSubDomains: the functions do not own their parent domain.
HSTS = (b"strict-transport-security", b"max-age=31536000")
WITH_HSTS = (*BASE_HEADERS, HSTS)
NAMES = frozenset(name for name, _ in WITH_HSTS)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self._app = app
        self._proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        extra = WITH_HSTS if self._proxies.peer(scope).https else BASE_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if any(name.lower() in NAMES for name, _ in headers):  # a page's own policy
                    present = {name.lower() for name, _ in headers}
                    headers += [header for header in extra if header[0] not in present]
                else:
                    headers += extra
                message["headers"] = headers
            await send(message)

        await self._app(scope, receive, send_with_headers)
