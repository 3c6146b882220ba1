"""The two pages as people use them, in a real browser against the real local stack.

Debian's Chromium (``/usr/bin/chromium``) is driven by Playwright for Python; Playwright's
own browser download is not used. Every page records the requests it makes, its Content
Security Policy violations and its uncaught errors, and each test asserts that no request
left 127.0.0.1 and that the policy was never broken. Screenshots go to
``artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
import psutil
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Response,
    ViewportSize,
    WebError,
    expect,
    sync_playwright,
)

from support import REPO
from support.functions import FunctionProcess
from support.local_stack import LocalStack, counts
from support.waits import wait_until

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium: install it with "
                "`apt-get install chromium` (.ci/run does so), then run them again",
                allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
PHONE = ViewportSize(width=360, height=780)
DESKTOP = ViewportSize(width=1280, height=800)
LIVE_WITHIN_MS = 1000  # a vote shows on an open results page within 1 s of its answer
STALL_SHOWN_WITHIN_S = 5  # a stopped worker shows on the results page within 5 s
VOTE_ID = re.compile(r"^[0-9a-f]{32}$")
AGE = re.compile(r"^(just now|\d+ s ago|\d+ min ago)$")
COUNT = re.compile(r"^[\d,]+$")
WAIT_MS = 20_000  # generous: a slow shared 2-core machine; expect() returns as soon as true
expect.set_options(timeout=WAIT_MS)


def votes_text(n: int) -> str:
    return f"{n:,} vote{'' if n == 1 else 's'}"


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
        if response.status >= 400 and (path == "/" or path.startswith("/static/")):
            self.problems.append(f"{response.status} for {response.url}")

    def assert_clean(self) -> None:
        foreign = [line for line in self.requests
                   if urlsplit(line.split(" ", 1)[1]).hostname != "127.0.0.1"]
        assert foreign == [], f"requests left 127.0.0.1: {foreign}"
        assert self.problems == [], f"the pages reported problems: {self.problems}"


class Browsing:
    """Opens browser contexts (one voter each) and checks every one of them at the end."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[tuple[BrowserContext, Recorder]] = []

    def page(self, url: str, **options: Any) -> tuple[Page, Recorder]:
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack.create(tmp_path_factory.mktemp("browser") / "data") as stack:
        yield stack


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Browsing]:
    browsing = Browsing(browser)
    yield browsing
    browsing.close()


def function_process(stack: LocalStack, name: str) -> psutil.Process:
    """The uvicorn process of one of the stack's functions (not the shell around it)."""
    app = f"{name}_fn.app:create_app"
    for process in stack.descendants():
        try:
            cmdline = process.cmdline()
        except psutil.NoSuchProcess:
            continue
        if app in cmdline and "uvicorn" in cmdline:
            return process
    raise LookupError(f"no {name}_fn process in the local stack")


@contextlib.contextmanager
def own_function(stack: LocalStack, name: str, log_dir: Path, unset: tuple[str, ...] = (),
                 **env: str) -> Iterator[FunctionProcess]:
    """A copy of one of the stack's functions, with the same servers, that we may stop and
    start (``unset`` and ``env`` change its settings).

    The stack's own processes cannot be restarted in place: honcho, which runs the local
    profile, stops every process as soon as one of them exits.
    """
    stack_env = function_process(stack, name).environ()
    for variable in unset:
        stack_env.pop(variable, None)
    with FunctionProcess(name, {**stack_env, **env}, log_dir) as function:
        yield function


def vote_by_api(stack: LocalStack, option: str) -> dict[str, Any]:
    """One vote by a new voter (no cookie), as another person's phone would send it."""
    response = httpx.post(f"{stack.vote_url}/api/vote", json={"vote": option}, timeout=5)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def wait_counted(stack: LocalStack, expected: Callable[[dict[str, int]], bool]) -> None:
    wait_until(lambda: expected(counts(stack.results())), 15, "the votes counted")


def option_votes(page: Page, option: str) -> Locator:
    return page.locator(f'li[data-option="{option}"] .votes')


def open_results(browsing: Browsing, url: str, **options: Any) -> tuple[Page, Recorder]:
    page, recorder = browsing.page(url, **options)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    return page, recorder


def results_url_of(page: Page) -> str:
    url = page.locator("main").get_attribute("data-results-url") or ""
    if not url:
        pytest.fail("the vote page has no results_url (data-results-url on <main>): vote_fn "
                    "needs RESULTS_URL, which the local profile sets to result_fn's URL")
    return url


def screenshot(page: Page, name: str, size: ViewportSize) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(size)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def test_both_pages_load_only_their_own_assets_under_a_strict_policy(
        stack: LocalStack, browsing: Browsing) -> None:
    """Each page loads its CSS, script and icon from its own function, sends a CSP without
    inline script or style, and no request leaves 127.0.0.1."""
    vote_page, vote_requests = browsing.page(stack.vote_url)
    results_page, results_requests = open_results(browsing, stack.result_url)
    for page, recorder, url, assets in (
            (vote_page, vote_requests, stack.vote_url, ("vote.css", "vote.js", "icon.svg")),
            (results_page, results_requests, stack.result_url,
             ("results.css", "results.js", "icon.svg"))):
        response = page.request.get(url)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, policy
        assert "style-src 'self'" in policy, policy
        for asset in assets:
            assert f"GET {url}/static/{asset}" in recorder.requests, recorder.requests
    assert any(line == f"GET {stack.result_url}/stream" for line in results_requests.requests)
    browsing.assert_clean()


def test_a_click_marks_the_choice_and_the_receipt_goes_from_sent_to_counted(
        stack: LocalStack, browsing: Browsing) -> None:
    """Clicking an option marks it without a reload; the receipt shows its id as sent, then
    counted; after a change of mind the first receipt says superseded."""
    page, _ = browsing.page(stack.vote_url)
    assert results_url_of(page) == stack.result_url
    page.evaluate("""() => {
        window.notReloaded = true;
        window.receiptStatuses = [];
        const list = document.getElementById("receipts");
        const record = () => {
            const first = list.querySelector(".receipt-item");
            const seen = window.receiptStatuses;
            if (first && seen[seen.length - 1] !== first.dataset.status) {
                seen.push(first.dataset.status);
            }
        };
        new MutationObserver(record).observe(list, {subtree: true, childList: true,
                                                    attributes: true});
    }""")
    cats = page.get_by_role("button", name="Cats")
    dogs = page.get_by_role("button", name="Dogs")
    expect(cats).to_have_attribute("aria-pressed", "false")

    cats.click()
    expect(cats).to_have_attribute("aria-pressed", "true")
    expect(cats).to_have_class("option chosen")
    expect(dogs).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#status")).to_have_text(
        "You voted for Cats. You can change your vote at any time.")
    first = page.locator(".receipt-item").first
    expect(first.locator(".receipt-id")).to_have_text(VOTE_ID)
    expect(first).to_have_attribute("data-status", "counted")
    expect(first.locator(".receipt-status")).to_have_text("Counted")
    expect(page.locator("#receipt-announce")).to_have_text("Your vote for Cats is counted.")
    assert page.evaluate("window.receiptStatuses") == ["sent", "counted"]

    dogs.click()
    expect(dogs).to_have_attribute("aria-pressed", "true")
    expect(cats).to_have_attribute("aria-pressed", "false")
    items = page.locator(".receipt-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_have_attribute("data-status", "counted")
    expect(items.nth(1)).to_have_attribute("data-status", "superseded")
    expect(items.nth(1).locator(".receipt-status")).to_have_text("Superseded by your later vote")
    assert page.evaluate("window.receiptStatuses") == ["sent", "counted", "sent", "counted"]
    assert page.evaluate("window.notReloaded") is True
    browsing.assert_clean()


def test_results_change_within_1_second_of_the_vote_without_a_reload(
        stack: LocalStack, browsing: Browsing) -> None:
    """With the results page open, a click on the vote page changes the count there, without
    a reload, within 1 s of the vote's answer."""
    before = counts(stack.results())["dogs"]
    results_page, results_requests = open_results(browsing, stack.result_url)
    expect(option_votes(results_page, "dogs")).to_have_text(votes_text(before))
    results_page.evaluate("""(expected) => {
        window.notReloaded = true;
        window.changedAt = null;
        const votes = document.querySelector('li[data-option="dogs"] .votes');
        new MutationObserver(() => {
            if (window.changedAt === null && votes.textContent === expected) {
                window.changedAt = Date.now();
            }
        }).observe(votes, {subtree: true, childList: true, characterData: true});
    }""", votes_text(before + 1))
    vote_page, _ = browsing.page(stack.vote_url)

    with vote_page.expect_response(lambda r: r.url.endswith("/api/vote")) as answer:
        vote_page.get_by_role("button", name="Dogs").click()
    assert answer.value.status == 202
    assert answer.value.finished() is None  # the timing is complete once the body is in
    timing = answer.value.request.timing
    assert timing["responseEnd"] > 0, timing
    answered_at = timing["startTime"] + timing["responseEnd"]

    expect(option_votes(results_page, "dogs")).to_have_text(votes_text(before + 1))
    changed_at = results_page.evaluate("window.changedAt")
    elapsed_ms = changed_at - answered_at
    print(f"results page changed {elapsed_ms:.0f} ms after the vote's answer")
    assert elapsed_ms < LIVE_WITHIN_MS, (
        f"the results page changed {elapsed_ms:.0f} ms after the vote was answered (target "
        f"{LIVE_WITHIN_MS} ms); on a loaded machine rerun this test alone before suspecting "
        "the stream")
    assert results_page.evaluate("window.notReloaded") is True
    documents = [line for line in results_requests.requests
                 if line == f"GET {stack.result_url}/"]
    assert len(documents) == 1, results_requests.requests
    browsing.assert_clean()


def test_the_results_page_reconnects_after_result_fn_restarts(
        stack: LocalStack, browsing: Browsing, tmp_path: Path) -> None:
    """When result_fn stops the page says "reconnecting"; when it is back the page is live
    again by itself and keeps updating."""
    with own_function(stack, "result", tmp_path) as result_fn:
        page, _ = open_results(browsing, result_fn.url)
        connection = page.locator("#connection")
        votes = counts(stack.results())["cats"]
        vote_by_api(stack, "cats")
        expect(option_votes(page, "cats")).to_have_text(votes_text(votes + 1))

        result_fn.stop()
        expect(connection).to_have_attribute("data-state", "reconnecting")
        expect(connection).to_have_text("Reconnecting\u2026")
        result_fn.start()
        expect(connection).to_have_attribute("data-state", "live")
        expect(connection).to_have_text("Live")

        vote_by_api(stack, "cats")
        expect(option_votes(page, "cats")).to_have_text(votes_text(votes + 2))
    browsing.assert_clean()


def test_a_viewer_refused_by_a_busy_instance_gets_in_by_itself(
        stack: LocalStack, browsing: Browsing, tmp_path: Path) -> None:
    """A 503 (too many viewers) makes EventSource give up for good; the page keeps retrying
    with backoff and goes live once there is room."""
    with own_function(stack, "result", tmp_path, STREAM_MAX_SUBSCRIBERS="1") as result_fn:
        first, _ = open_results(browsing, result_fn.url)
        second, second_recorder = browsing.page(result_fn.url)
        expect(second.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        second.wait_for_event("request", lambda request: request.url.endswith("/stream"))
        assert f"503 {result_fn.url}/stream" in second_recorder.responses
        expect(second.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        first.close()
        expect(second.locator("#connection")).to_have_attribute("data-state", "live")
        votes = counts(stack.results())["dogs"]
        vote_by_api(stack, "dogs")
        expect(option_votes(second, "dogs")).to_have_text(votes_text(votes + 1))
    browsing.assert_clean()


def test_streams_ended_by_the_server_are_reopened_and_updates_keep_coming(
        stack: LocalStack, browsing: Browsing, tmp_path: Path) -> None:
    """Each stream ends itself after its lifetime (1 s here); the page reopens it and still
    shows the next vote."""
    with own_function(stack, "result", tmp_path, STREAM_LIFETIME_SECONDS="1") as result_fn:
        page, recorder = open_results(browsing, result_fn.url)
        for _ in range(3):
            page.wait_for_event("request", lambda request: request.url.endswith("/stream"))
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        votes = counts(stack.results())["dogs"]
        vote_by_api(stack, "dogs")
        expect(option_votes(page, "dogs")).to_have_text(votes_text(votes + 1))
        assert f"200 {result_fn.url}/stream" in recorder.responses
    browsing.assert_clean()


def test_without_a_results_url_the_receipt_is_its_id_alone(
        stack: LocalStack, browsing: Browsing, tmp_path: Path) -> None:
    """A vote_fn without RESULTS_URL shows the receipt id and no status, and asks no other
    origin (its policy would refuse it anyway)."""
    with own_function(stack, "vote", tmp_path, unset=("RESULTS_URL",)) as vote_fn:
        page, recorder = browsing.page(vote_fn.url)
        assert page.locator("main").get_attribute("data-results-url") == ""
        page.get_by_role("button", name="Dogs").click()
        item = page.locator(".receipt-item")
        expect(item.locator(".receipt-id")).to_have_text(VOTE_ID)
        expect(page.locator("#receipt-hint")).to_have_text("The receipt id identifies your vote.")
        assert item.locator(".receipt-status").count() == 0
        assert page.get_by_role("link", name="See the results live").count() == 0
        assert not any(stack.result_url in line for line in recorder.requests), recorder.requests
    browsing.assert_clean()


def test_voting_works_without_javascript(stack: LocalStack, browsing: Browsing) -> None:
    """With JavaScript off, the plain form post votes, marks the choice, and the vote counts."""
    before = counts(stack.results())
    page, recorder = browsing.page(stack.vote_url, java_script_enabled=False)
    page.get_by_role("button", name="Dogs").click()
    expect(page.get_by_role("button", name="Dogs")).to_have_class("option chosen")
    expect(page.locator("#status")).to_have_text(
        "You voted for Dogs. You can change your vote at any time.")
    assert f"POST {stack.vote_url}/" in recorder.requests
    assert not any("/api/" in line for line in recorder.requests), recorder.requests
    wait_counted(stack, lambda now: now["dogs"] == before["dogs"] + 1)
    browsing.assert_clean()


def test_the_vote_page_works_from_the_keyboard(stack: LocalStack, browsing: Browsing) -> None:
    """Tab reaches each option with a visible focus ring; Enter and Space vote."""
    page, _ = browsing.page(stack.vote_url)
    focused = "document.activeElement && document.activeElement.value"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "cats"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "the focused option shows no focus ring"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "dogs"
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Dogs")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(focused) == "cats"
    page.keyboard.press("Space")
    expect(page.get_by_role("button", name="Cats")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("button", name="Dogs")).to_have_attribute("aria-pressed", "false")
    browsing.assert_clean()


def test_the_results_page_shows_the_pipeline_and_a_stalled_worker(
        stack: LocalStack, browsing: Browsing) -> None:
    """The pipeline panel shows votes counted, the last batch's age and the queue at the last
    look; with the worker frozen it says so in plain words within seconds, then recovers."""
    before = stack.results()["total"]  # the stack is shared: earlier tests voted too
    vote_by_api(stack, "cats")
    wait_until(lambda: stack.results()["total"] > before, 15, "the vote counted")
    total = stack.results()["total"]
    page, _ = open_results(browsing, stack.result_url)
    panel = page.locator("#pipeline")
    expect(panel).to_have_attribute("data-state", "ok")
    expect(page.locator("#pipeline-message")).to_have_text("Votes are being counted.")
    expect(page.locator("#counted")).to_have_text(f"{total:,}")
    expect(page.locator("#last-batch")).to_have_text(AGE)
    expect(page.locator("#queued")).to_have_text(COUNT)

    worker = function_process(stack, "worker")
    worker.suspend()  # frozen, not exited: honcho would stop the whole stack
    try:
        frozen_at = time.monotonic()
        expect(panel).to_have_attribute("data-state", "stalled")
        shown_after_s = time.monotonic() - frozen_at
        print(f"stall shown {shown_after_s:.1f} s after the worker froze")
        assert shown_after_s < STALL_SHOWN_WITHIN_S, (
            f"the stall showed {shown_after_s:.1f} s after the worker froze (target "
            f"{STALL_SHOWN_WITHIN_S} s, with PIPELINE_STALL_SECONDS=3 in the local profile)")
        expect(page.locator("#pipeline-message")).to_contain_text("The worker has not checked")
        expect(page.locator("#announce")).to_contain_text("The worker has not checked")
        screenshot(page, "results-stalled-phone", PHONE)
    finally:
        worker.resume()
    expect(panel).to_have_attribute("data-state", "ok")
    expect(page.locator("#announce")).to_have_text("Votes are being counted.")
    browsing.assert_clean()


def test_labels_with_markup_are_shown_as_text_on_both_pages(
        browsing: Browsing, tmp_path: Path) -> None:
    """Labels such as ``<b>Bold</b>`` appear literally in buttons, title, status, receipt,
    results and announcements; no markup from a label reaches the DOM or runs."""
    bold, image = '<b>Bold</b> & "co"', "<img src=x onerror=alert(1)>"
    with LocalStack.create(tmp_path / "data",
                           VOTE_OPTIONS=f"bold:{bold},img:{image}") as stack:
        vote_page, _ = browsing.page(stack.vote_url)
        results_page, _ = open_results(browsing, stack.result_url)
        dialogs: list[str] = []

        def refuse(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        for page in (vote_page, results_page):
            page.on("dialog", refuse)

        assert vote_page.title() == f"Vote: {bold} or {image}?"
        assert vote_page.locator("h1").inner_text() == f"{bold} or {image}?"
        assert vote_page.locator("button.option").all_inner_texts() == [bold, image]
        vote_page.get_by_role("button", name=image).click()
        expect(vote_page.locator("#status")).to_have_text(
            f"You voted for {image}. You can change your vote at any time.")
        expect(vote_page.locator(".receipt-option")).to_have_text(image)
        expect(vote_page.locator("#receipt-announce")).to_have_text(
            f"Your vote for {image} is counted.")

        assert results_page.title() == f"Results: {bold} vs {image}"
        assert results_page.locator(".label").all_inner_texts() == [bold, image]
        expect(option_votes(results_page, "img")).to_have_text(votes_text(1))
        expect(results_page.locator("#announce")).to_contain_text(f"{image} 100.0%")
        for page in (vote_page, results_page):
            assert page.locator("main b, main img").count() == 0
        assert dialogs == []
        browsing.assert_clean()


def test_screenshots_at_phone_and_desktop_widths(stack: LocalStack, browsing: Browsing) -> None:
    """Both pages fit a 360 px phone without sideways scrolling; screenshots of each page at
    phone and desktop widths are written to artifacts/screenshots/ for the README."""
    for option in ("cats", "dogs", "cats", "cats", "dogs", "cats"):
        vote_by_api(stack, option)
    for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        vote_page, _ = browsing.page(stack.vote_url, viewport=size, color_scheme="light",
                                     reduced_motion="reduce")
        vote_page.get_by_role("button", name="Cats").click()
        expect(vote_page.locator(".receipt-item").first).to_have_attribute(
            "data-status", "counted")
        results_page, _ = open_results(browsing, stack.result_url, viewport=size,
                                       color_scheme="light", reduced_motion="reduce")
        expect(results_page.locator("#pipeline")).to_have_attribute("data-state", "ok")
        for page_name, page in (("vote", vote_page), ("results", results_page)):
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"the {page_name} page scrolls sideways at {size['width']} px"
            screenshot(page, f"{page_name}-{name}", size)
    browsing.assert_clean()
