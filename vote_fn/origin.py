"""Refusing votes that another site's page makes a browser send (cross-site request forgery).

Browsers say where a request comes from: ``Sec-Fetch-Site`` (every current browser) and
``Origin`` (on every POST). The check follows the one Go's ``net/http`` adopted
(``CrossOriginProtection``):

- ``Sec-Fetch-Site`` present: only ``same-origin`` and ``none`` (the person typed or
  bookmarked it) pass; ``same-site`` (a sibling subdomain) and ``cross-site`` do not. The
  browser compared the origins itself, so its verdict stands even where a proxy in front
  has changed the ``Host`` header or the scheme.
- otherwise ``Origin`` present: its host must be the ``Host`` the request was sent to
  (older browsers).
- ``Origin: null`` (a sandboxed frame, a ``data:`` or ``file:`` page) never passes: it is
  never this app's page.
- neither header: not a browser (curl, a load generator, an API client), which is not
  the threat here: such a client cannot ride on someone else's cookies.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


def cross_site_reason(headers: Mapping[str, str]) -> str | None:
    """Why the request looks cross-site, or None when it may be a vote (``headers`` by
    lower-case name)."""
    origin = headers.get("origin")
    if origin is not None and origin.strip().lower() == "null":
        return "Origin: null"
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site.strip().lower() in ALLOWED_FETCH_SITES:
            return None
        return f"Sec-Fetch-Site: {fetch_site[:32]}"
    if origin is not None and not _same_host(origin, headers.get("host", "")):
        return "Origin is another site"
    return None


def _same_host(origin: str, host: str) -> bool:
    try:
        netloc = urlsplit(origin.strip()).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.strip().lower()
