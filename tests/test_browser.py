"""The pages as people use them, in a real browser (support/browser.py) against the real
local stack: voting and its receipts, the live results and their reconnections, the
pipeline's story when the worker stalls or a store goes down, keyboard use, no JavaScript,
and labels with markup. A live session run from the admin page, and the audit of the
layouts, are tests/test_browser_session.py.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psutil
import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, ViewportSize, expect

from common.polls import FIRST
from support import REPO
from support.browser import (
    CHROMIUM,
    NO_CHROMIUM,
    WAIT_MS,
    Browsing,
    Recorder,
    screenshot,
)
from support.functions import FunctionProcess
from support.local_stack import LocalStack, counts
from support.presenter import Presenter
from support.processes import child_env
from support.servers import start_postgres
from support.waits import wait_until

if not CHROMIUM.exists():
    pytest.skip(NO_CHROMIUM, allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PHONE = ViewportSize(width=360, height=780)
DESKTOP = ViewportSize(width=1280, height=800)
LIVE_WITHIN_MS = 1000  # a vote shows on an open results page within 1 s of its answer
STALL_SHOWN_WITHIN_S = 5  # a stopped worker shows on the results page within 5 s
VOTE_ID = re.compile(r"^[0-9a-f]{32}$")
AGE = re.compile(r"^(a few seconds ago|(\d+) s ago|(\d+) min ago)$")
COUNT = re.compile(r"^[\d,]+$")
NOT_CONNECTED = "Not connected to the results service: the figures may be out of date."
expect.set_options(timeout=WAIT_MS)


def votes_text(n: int) -> str:
    return f"{n:,} vote{'' if n == 1 else 's'}"


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Browsing]:
    with Browsing(browser) as browsing:
        yield browsing


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


def vote_on(page: Page, label: str) -> None:
    """Choose the option and press Vote, as a person does."""
    page.get_by_role("radio", name=label, exact=True).check()
    page.get_by_role("button", name="Vote", exact=True).click()


def card(page: Page, label: str) -> Locator:
    return page.locator("label.option", has=page.get_by_role("radio", name=label, exact=True))


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


def in_view(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    return box["y"] >= 0 and box["y"] + box["height"] <= size["height"]


def test_every_page_loads_only_its_own_assets_under_a_strict_policy(
        stack: LocalStack, browsing: Browsing) -> None:
    """The vote, admin, results and projector pages load their CSS, script and icon from
    their own function, by content-named addresses, under a CSP without inline script or
    style; no request leaves 127.0.0.1."""
    vote_page, vote_requests = browsing.page(stack.vote_url)
    admin_page, admin_requests = browsing.page(f"{stack.vote_url}/admin")
    results_page, results_requests = open_results(browsing, stack.result_url)
    present_page, present_requests = open_results(browsing, f"{stack.result_url}/present")
    for page, recorder, url, origin, assets in (
            (vote_page, vote_requests, stack.vote_url, stack.vote_url,
             ("vote.css", "vote.js", "icon.svg")),
            (admin_page, admin_requests, f"{stack.vote_url}/admin", stack.vote_url,
             ("vote.css", "admin.css", "admin.js", "icon.svg")),
            (results_page, results_requests, stack.result_url, stack.result_url,
             ("results.css", "results.js", "icon.svg")),
            (present_page, present_requests, f"{stack.result_url}/present", stack.result_url,
             ("results.css", "present.css", "results.js", "icon.svg"))):
        policy = page.request.get(url).headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, policy
        assert "style-src 'self'" in policy, policy
        for asset in assets:
            named = re.compile(rf"GET {re.escape(origin)}/static/{asset}\?v=[0-9a-f]{{12}}$")
            assert any(named.match(line) for line in recorder.requests), recorder.requests
    admin_policy = admin_page.request.get(f"{stack.vote_url}/admin").headers
    assert "connect-src 'self'" in admin_policy["content-security-policy"]
    assert admin_policy["cache-control"] == "no-store"
    for recorder, url in ((results_requests, stack.result_url),
                          (present_requests, stack.result_url)):
        assert f"GET {url}/stream" in recorder.requests
        assert f"GET {url}/join.svg" in recorder.requests
    browsing.assert_clean()


def test_a_vote_marks_the_choice_and_the_receipt_goes_from_sent_to_counted(
        stack: LocalStack, browsing: Browsing) -> None:
    """Choosing an option and pressing Vote marks it without a reload; the receipt shows its
    id as sent, then counted, and screen readers are not read the id; after a change of
    mind the first receipt says superseded."""
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
    cats = page.get_by_role("radio", name="Cats", exact=True)
    dogs = page.get_by_role("radio", name="Dogs", exact=True)
    expect(page.get_by_role("radiogroup", name="Cats or dogs?")).to_have_count(1)
    expect(cats).not_to_be_checked()

    vote_on(page, "Cats")
    expect(card(page, "Cats")).to_have_class("option chosen")
    expect(cats).to_be_checked()
    expect(card(page, "Dogs")).to_have_class("option")
    expect(page.locator("#status")).to_have_text(
        "You voted for Cats. You can change your vote at any time.")
    first = page.locator(".receipt-item").first
    vote_id = first.locator(".receipt-id").inner_text()
    assert VOTE_ID.match(vote_id), vote_id
    expect(first).to_have_attribute("data-status", "counted")
    expect(first.locator(".receipt-status")).to_have_text("Counted")
    expect(page.locator("#receipt-announce")).to_have_text("Your vote for Cats is counted.")
    assert page.evaluate("window.receiptStatuses") == ["sent", "counted"]
    heard = page.locator("#receipts").aria_snapshot()
    assert vote_id not in heard and "Counted" in heard, heard

    vote_on(page, "Dogs")
    expect(dogs).to_be_checked()
    expect(card(page, "Dogs")).to_have_class("option chosen")
    expect(card(page, "Cats")).to_have_class("option")
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
    """With the results page open, a vote on the vote page changes the count there, without
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

    vote_page.get_by_role("radio", name="Dogs").check()
    with vote_page.expect_response(lambda r: r.url.endswith("/api/vote")) as answer:
        vote_page.get_by_role("button", name="Vote").click()
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
    """When result_fn stops the page says "reconnecting" and, instead of "Votes are being
    counted", that the figures may be out of date; when it is back the page is live again
    by itself and keeps updating."""
    with own_function(stack, "result", tmp_path) as result_fn:
        page, _ = open_results(browsing, result_fn.url)
        connection, panel = page.locator("#connection"), page.locator("#pipeline")
        expect(panel).to_have_attribute("data-state", "ok")
        live_colour = panel.evaluate("e => getComputedStyle(e).borderLeftColor")
        votes = counts(stack.results())["cats"]
        vote_by_api(stack, "cats")
        expect(option_votes(page, "cats")).to_have_text(votes_text(votes + 1))

        result_fn.stop()
        expect(connection).to_have_attribute("data-state", "reconnecting")
        expect(connection).to_have_text("Reconnecting\u2026")
        expect(panel).to_have_attribute("data-state", "unknown")
        expect(page.locator("#pipeline-message")).to_contain_text(NOT_CONNECTED)
        assert panel.evaluate("e => getComputedStyle(e).borderLeftColor") != live_colour
        result_fn.start()
        expect(connection).to_have_attribute("data-state", "live")
        expect(connection).to_have_text("Live")
        expect(panel).to_have_attribute("data-state", "ok")

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
        vote_on(page, "Dogs")
        item = page.locator(".receipt-item")
        expect(item.locator(".receipt-id")).to_have_text(VOTE_ID)
        expect(page.locator("#receipt-hint")).to_have_text("The receipt id identifies your vote.")
        assert item.locator(".receipt-status").count() == 0
        assert page.get_by_role("link", name="See the results live").count() == 0
        assert not any(stack.result_url in line for line in recorder.requests), recorder.requests
    browsing.assert_clean()


def test_voting_works_without_javascript(stack: LocalStack, browsing: Browsing) -> None:
    """With JavaScript off, the plain form post votes, the page comes back scrolled to the
    confirmation with the choice marked, and the vote counts."""
    before = counts(stack.results())
    page, recorder = browsing.page(stack.vote_url, java_script_enabled=False,
                                   viewport=PHONE)
    vote_on(page, "Dogs")
    expect(page.locator("#status")).to_have_text(
        "You voted for Dogs. You can change your vote at any time.")
    expect(card(page, "Dogs")).to_have_class("option chosen")
    expect(page.get_by_role("radio", name="Dogs")).to_be_checked()
    assert page.url == f"{stack.vote_url}/#status"
    assert in_view(page, "#status")
    assert f"POST {stack.vote_url}/" in recorder.requests
    assert not any("/api/" in line for line in recorder.requests), recorder.requests
    wait_counted(stack, lambda now: now["dogs"] == before["dogs"] + 1)
    browsing.assert_clean()


def test_the_vote_page_works_from_the_keyboard(stack: LocalStack, browsing: Browsing) -> None:
    """The options are one stop of the Tab key with a visible focus ring; arrows choose
    without voting, Enter votes, and Tab then Space on the Vote button votes too."""
    page, recorder = browsing.page(stack.vote_url)
    focused = "document.activeElement && document.activeElement.value"
    ring = "getComputedStyle(document.activeElement.closest('.option')).outlineStyle"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "cats"
    assert page.evaluate(ring) not in ("", "none"), "the focused option shows no focus ring"
    page.keyboard.press("ArrowRight")
    assert page.evaluate(focused) == "dogs"
    expect(page.get_by_role("radio", name="Dogs")).to_be_checked()
    assert not any(line.endswith("/api/vote") for line in recorder.requests), "an arrow voted"
    page.keyboard.press("Enter")
    expect(card(page, "Dogs")).to_have_class("option chosen")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(focused) == "cats"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Vote"
    page.keyboard.press("Space")
    expect(card(page, "Cats")).to_have_class("option chosen")
    expect(card(page, "Dogs")).to_have_class("option")
    assert sum(line.endswith("/api/vote") for line in recorder.requests) == 2
    browsing.assert_clean()


def moments(page: Page) -> list[float]:
    """When the pipeline panel changed (ms, page clock), changes within 100 ms as one."""
    times: list[float] = page.evaluate("window.panelChanges")
    grouped: list[float] = []
    for at in times:
        if not grouped or at - grouped[-1] > 100:
            grouped.append(at)
    return grouped


def test_a_stalled_worker_tells_one_current_story(stack: LocalStack, browsing: Browsing) -> None:
    """The panel shows the last batch's age and the queue at the last look; with the worker
    frozen the status pill and the panel both say counting has stopped (no green "Live"),
    within seconds, and how long ago the worker looked, an age that grows as the API's
    does without ticking every second; then both recover."""
    before = stack.results()["total"]  # the stack is shared: earlier tests voted too
    vote_by_api(stack, "cats")
    wait_until(lambda: stack.results()["total"] > before, 15, "the vote counted")
    page, _ = open_results(browsing, stack.result_url)
    panel, pill = page.locator("#pipeline"), page.locator("#connection")
    expect(panel).to_have_attribute("data-state", "ok")
    expect(pill).to_have_text("Live")
    live_colour = pill.evaluate("e => getComputedStyle(e).backgroundColor")
    expect(page.locator("#pipeline-message")).to_have_text("Votes are being counted.")
    expect(page.locator("#last-batch")).to_have_text(AGE)
    expect(page.locator("#queued")).to_have_text(COUNT)
    expect(page.locator("#worker-seen-row")).to_be_hidden()

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
        page.evaluate("""() => {
            window.panelChanges = [];
            new MutationObserver(() => window.panelChanges.push(performance.now())).observe(
                document.getElementById("pipeline"),
                {subtree: true, childList: true, characterData: true, attributes: true});
        }""")
        expect(pill).to_have_attribute("data-pipeline", "stalled")
        expect(pill).to_have_text("Counting has stopped")
        assert pill.evaluate("e => getComputedStyle(e).backgroundColor") != live_colour
        expect(page.locator("#pipeline-message")).to_contain_text(
            "The worker has stopped checking the queue")
        expect(page.locator("#announce")).to_contain_text("The worker has stopped checking")
        seen = page.locator("#worker-seen")
        expect(seen).to_have_text(AGE)
        screenshot(page, "results-stalled-phone", PHONE)
        expect(seen).to_have_text(re.compile(r"^[1-9]0 s ago$"))
        shown = int(seen.inner_text().split()[0])
        measured = stack.results()["pipeline"]["worker_seen_age_s"]  # type: ignore[index]
        print(f"worker seen {measured} s ago by the API; the page says {seen.inner_text()}")
        assert shown <= measured < shown + 15, (shown, measured)
        changed = moments(page)
        gaps = [later - earlier for earlier, later in itertools.pairwise(changed)]
        assert all(gap > 4000 for gap in gaps), f"the panel changed at {changed} ms"
    finally:
        worker.resume()
    expect(panel).to_have_attribute("data-state", "ok")
    expect(pill).to_have_text("Live")
    expect(page.locator("#worker-seen-row")).to_be_hidden()
    expect(page.locator("#announce")).to_have_text("Votes are being counted.")
    browsing.assert_clean()


def prepared_database(url: str) -> None:
    """The schema and the first poll, as a deployment prepares them (``python -m worker_fn
    migrate``; it reads the worker's settings but talks to PostgreSQL only)."""
    subprocess.run([sys.executable, "-m", "worker_fn", "migrate"], cwd=REPO, check=True,
                   env=child_env(DATABASE_URL=url, REDIS_URL="redis://127.0.0.1:1/0"),
                   capture_output=True, timeout=60)


def test_a_database_that_stops_answering_is_said_not_hidden(
        stack: LocalStack, browsing: Browsing, tmp_path: Path) -> None:
    """A result_fn whose PostgreSQL stops answering keeps the last figures on the page, and
    the pill and the panel say they may be out of date; never that votes are being
    counted."""
    postgres = start_postgres(tmp_path)
    try:
        prepared_database(postgres.url)
        with own_function(stack, "result", tmp_path, DATABASE_URL=postgres.url) as result_fn:
            page, _ = open_results(browsing, result_fn.url)
            panel, pill = page.locator("#pipeline"), page.locator("#connection")
            expect(panel).to_have_attribute("data-state", "waiting")
            postgres.stop()
            expect(panel).to_have_attribute("data-state", "down")
            expect(pill).to_have_attribute("data-pipeline", "down")
            expect(pill).to_have_text("Figures may be out of date")
            expect(page.locator("#pipeline-message")).to_have_text(
                "The results database is not answering: the figures shown may be out of date.")
            expect(page.locator("#announce")).to_contain_text("not answering")
            expect(option_votes(page, "cats")).to_have_text(votes_text(0))
    finally:
        postgres.stop()
    browsing.assert_clean()


def test_labels_with_markup_are_shown_as_text_on_every_page(
        stack: LocalStack, browsing: Browsing) -> None:
    """A question and labels such as ``<b>Bold</b>`` appear literally in the title, heading,
    options, status, receipt, results, projector screen and announcements; no markup from
    them reaches the DOM or runs."""
    bold, image = '<b>Bold</b> & "co"', "<img src=x onerror=alert(1)>"
    question = "<i>Which</i> one?"
    presenter = Presenter(stack.vote_url)
    presenter.open(presenter.create(question, [bold, image]))
    try:
        vote_page, _ = browsing.page(stack.vote_url)
        results_page, _ = open_results(browsing, stack.result_url)
        present_page, _ = open_results(browsing, f"{stack.result_url}/present")
        dialogs: list[str] = []

        def refuse(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        pages = (vote_page, results_page, present_page)
        for page in pages:
            page.on("dialog", refuse)
        assert vote_page.title() == f"Vote: {question}"
        assert vote_page.locator("h1").inner_text() == question
        assert vote_page.locator(".option-label").all_inner_texts() == [bold, image]
        vote_on(vote_page, image)
        expect(vote_page.locator("#status")).to_have_text(
            f"You voted for {image}. You can change your vote at any time.")
        expect(vote_page.locator(".receipt-option")).to_have_text(image)
        expect(vote_page.locator("#receipt-announce")).to_have_text(
            f"Your vote for {image} is counted.")

        assert results_page.title() == f"Results: {question}"
        for page in (results_page, present_page):
            assert page.locator(".label").all_inner_texts() == [bold, image]
            expect(option_votes(page, "o2")).to_have_text(votes_text(1))
        expect(results_page.locator("#announce")).to_contain_text(f"{image} 100.0%")
        for page in pages:
            assert page.locator("main b, main img:not(.qr), main i").count() == 0
        assert dialogs == []
    finally:
        presenter.open(FIRST)
    browsing.assert_clean()


def test_screenshots_at_phone_and_desktop_widths(stack: LocalStack, browsing: Browsing) -> None:
    """Both pages fit a 360 px phone without sideways scrolling; screenshots of each page at
    phone and desktop widths are written to artifacts/screenshots/ for the README."""
    for option in ("cats", "dogs", "cats", "cats", "dogs", "cats"):
        vote_by_api(stack, option)
    for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        vote_page, _ = browsing.page(stack.vote_url, viewport=size, color_scheme="light",
                                     reduced_motion="reduce")
        vote_on(vote_page, "Cats")
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
