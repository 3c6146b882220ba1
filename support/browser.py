"""The pages in a real browser: Debian's Chromium (``/usr/bin/chromium``) driven by
Playwright for Python, without Playwright's own browser download.

Every page records the requests it makes, its Content Security Policy violations, its
uncaught errors and its failed loads of a page or a static file; ``Browsing.assert_clean``
fails a test when any request left 127.0.0.1 or any of those happened. Screenshots go to
``artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    ViewportSize,
    WebError,
    sync_playwright,
)

from support import REPO

CHROMIUM = Path("/usr/bin/chromium")
NO_CHROMIUM = ("browser tests need Debian's Chromium at /usr/bin/chromium: install it with "
               "`apt-get install chromium` (.ci/run does so), then run them again")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
WAIT_MS = 20_000  # generous: a slow shared 2-core machine; expect() returns as soon as true
PAGES = ("/", "/admin", "/present", "/join.svg")  # a failed load of one is a problem


@dataclass
class Recorder:
    """What the pages of one browser context did on the network and in the console."""

    requests: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.on("request", lambda request: self.requests.append(
            f"{request.method} {request.url}"))
        context.on("console", self._console)
        context.on("weberror", self._error)
        context.on("response", self._response)

    def _error(self, error: WebError) -> None:
        self.problems.append(f"uncaught: {error.error}")

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.problems.append(f"CSP: {message.text}")

    def _response(self, response: Response) -> None:
        self.responses.append(f"{response.status} {response.url}")
        path = urlsplit(response.url).path
        if response.status >= 400 and (path in PAGES or path.startswith("/static/")):
            self.problems.append(f"{response.status} for {response.url}")

    def assert_clean(self) -> None:
        foreign = [line for line in self.requests
                   if urlsplit(line.split(" ", 1)[1]).hostname != "127.0.0.1"]
        assert foreign == [], f"requests left 127.0.0.1: {foreign}"
        assert self.problems == [], f"the pages reported problems: {self.problems}"


class Browsing:
    """Opens browser contexts (one person each) and checks every one of them at the end;
    ``with`` closes them."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[tuple[BrowserContext, Recorder]] = []

    def page(self, url: str, **options: Any) -> tuple[Page, Recorder]:
        """A new context (its own cookies) with one page open at ``url``."""
        context = self.browser.new_context(**options)
        context.set_default_timeout(WAIT_MS)
        recorder = Recorder()
        recorder.attach(context)
        self.contexts.append((context, recorder))
        page = context.new_page()
        page.goto(url)
        return page, recorder

    def assert_clean(self) -> None:
        for _, recorder in self.contexts:
            recorder.assert_clean()

    def close(self) -> None:
        for context, _ in self.contexts:
            context.close()

    def __enter__(self) -> Browsing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Page, name: str, size: ViewportSize | None = None,
               *, full_page: bool = True) -> Path:
    """``artifacts/screenshots/<name>.png`` of the page (at ``size``, if given)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if size is not None:
        page.set_viewport_size(size)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=full_page)
    return path
