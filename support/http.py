"""Plain HTTP for the tests and the benchmarks: no client library between us and the
answer."""

from __future__ import annotations

import urllib.error
import urllib.request
from http.cookiejar import CookieJar, DefaultCookiePolicy


def http_get(url: str, timeout_s: float = 2) -> tuple[int, bytes]:
    """The status and body of ``GET url``, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def no_cookies() -> CookieJar:
    """A cookie jar that keeps nothing: a client shared by many voters must not send one
    voter's cookie for another (each sends its own, or none)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
