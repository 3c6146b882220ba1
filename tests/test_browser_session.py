"""A live session in a real browser (support/browser.py) against the real local stack, run
from the presenter's page, and the layouts measured where an audit found them wanting: at
360 px, 768 px and 1920x1080, light and dark, with 2 and with 10 options of ~30
characters. Each layout test prints what it measured; screenshots go to
artifacts/screenshots/ (the README's are copied from there into docs/screenshots/).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, ViewportSize, expect
from starlette.testclient import TestClient

from support.browser import CHROMIUM, NO_CHROMIUM, WAIT_MS, Browsing, screenshot
from support.local_stack import LocalStack
from support.presenter import TOKEN, Presenter
from support.waits import wait_until
from vote_fn.app import create_app as create_vote_app
from vote_fn.settings import VoteSettings

if not CHROMIUM.exists():
    pytest.skip(NO_CHROMIUM, allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
expect.set_options(timeout=WAIT_MS)

PHONE = ViewportSize(width=360, height=780)
TABLET = ViewportSize(width=768, height=1024)
PROJECTOR = ViewportSize(width=1920, height=1080)
SIZES = {"360px": PHONE, "768px": TABLET, "1080p": PROJECTOR}
SCHEMES = ("light", "dark")
FOLLOWS_WITHIN_MS = 2000  # the vote page shows a newly opened poll within 2 s
MIN_PROJECTED_PX = 40  # labels, percentages, counts and the total on /present at 1080p
MOST_CHANGES_PER_S = 2  # displayed figures change at most this often
LONG_QUESTION = ("Which of these features should the team build first for the next "
                 "release of the voting app?")
LONG_LABELS = ("Faster page loads on old phones", "Better information for new users",
               "Offline voting with later upload", "Accessible colour themes for all",
               "Export of results to spreadsheets", "Presenter notes beside the poll",
               "Anonymous comments from the room", "Timers that close a poll by itself",
               "Several questions in one session", "Integration with video meetings")
# The heading's most lines, by width: a long question stays a few lines on a phone.
HEADING_LINES = {"360px": 4, "768px": 3, "1080p": 2}

# What a page looks like, measured in the page: the heading's lines, words broken across
# lines, sideways and downward overflow, where each row ends, and the rows of the grid.
MEASURE = """([heading, texts, rows]) => {
    const lineTops = (element) => {
        const range = document.createRange();
        range.selectNodeContents(element);
        return new Set([...range.getClientRects()].filter((r) => r.width > 0)
            .map((r) => Math.round(r.top))).size;
    };
    const broken = [];
    for (const element of document.querySelectorAll(`${heading}, ${texts}`)) {
        const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const word of node.textContent.matchAll(/\\S+/g)) {
                const range = document.createRange();
                range.setStart(node, word.index);
                range.setEnd(node, word.index + word[0].length);
                const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
                if (tops.size > 1) broken.push(word[0]);
            }
        }
    }
    const boxes = [...document.querySelectorAll(rows)].map((e) => e.getBoundingClientRect());
    const perRow = {};
    for (const box of boxes) perRow[Math.round(box.top)] = (perRow[Math.round(box.top)] || 0) + 1;
    const root = document.documentElement;
    return {
        headingLines: lineTops(document.querySelector(heading)), broken,
        sideways: root.scrollWidth - root.clientWidth, height: root.scrollHeight,
        lastRowBottom: Math.max(...boxes.map((b) => b.bottom)),
        gridRows: Object.keys(perRow).sort((a, b) => a - b).map((top) => perRow[top]),
    };
}"""


@dataclass(frozen=True)
class Case:
    """A poll of the audit: its options' count and length."""

    name: str
    question: str
    labels: tuple[str, ...]


CASES = {
    "2": Case("2", "Cats or dogs?", ("Cats", "Dogs")),
    "2-long": Case("2-long", LONG_QUESTION, LONG_LABELS[:2]),
    "10": Case("10", LONG_QUESTION, LONG_LABELS),
}


@pytest.fixture(scope="module")
def polls(stack: LocalStack) -> dict[str, str]:
    """The audit's polls, by case, each with votes: the 10 options get 50, one of them a
    single vote (2 %), to see the thinnest bar."""
    presenter = Presenter(stack.vote_url)
    created = {}
    for case in CASES.values():
        poll = presenter.create(case.question, case.labels)
        presenter.open(poll)
        if len(case.labels) == 10:
            ballots = [f"o{1 + n % 9}" for n in range(49)] + ["o10"]
        else:
            ballots = ["o1", "o1", "o2"]
        for option in ballots:
            vote(stack, option, poll)
        created[case.name] = poll
    return created


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Browsing]:
    with Browsing(browser) as browsing:
        yield browsing


def vote(stack: LocalStack, option: str, poll: str | None = None) -> None:
    """One vote by a new voter, as another person's phone sends it."""
    document = {"vote": option} if poll is None else {"vote": option, "poll": poll}
    httpx.post(f"{stack.vote_url}/api/vote", json=document, timeout=5).raise_for_status()


def shown(stack: LocalStack, poll: str) -> None:
    """Open the poll and wait until the results show it (the worker has applied it)."""
    Presenter(stack.vote_url).open(poll)
    wait_until(lambda: stack.results()["poll"] == poll, 15, f"poll {poll} shown")


def not_reloaded(page: Page) -> None:
    page.evaluate("window.notReloaded = true")


def measure(page: Page, heading: str, texts: str, rows: str) -> dict[str, Any]:
    return page.evaluate(MEASURE, [heading, texts, rows])  # type: ignore[no-any-return]


def live(page: Page) -> Page:
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    return page


# --- The presenter's session --------------------------------------------------------------

def admin_poll_id(admin: Page, question: str) -> str:
    row = admin.locator("li.poll", has=admin.locator(".poll-question", has_text=question))
    return row.get_attribute("data-poll") or ""


def create_on_admin_page(admin: Page, question: str, options: str, after_close: bool) -> str:
    admin.get_by_label("Question").fill(question)
    admin.get_by_label("Options, one per line (2 to 10)").fill(options)
    mode = "only once you close the poll" if after_close else "as the votes come in"
    admin.get_by_role("radio", name=re.compile(mode)).check()
    admin.get_by_role("button", name="Create the poll").click()
    expect(admin.locator("#admin-status")).to_have_text(
        f"Created: \u201c{question}\u201d. Open it when the room is ready.")
    return admin_poll_id(admin, question)


def switch_time_ms(admin: Page, voters: list[Page], action: str, question: str,
                   expected: str) -> list[float]:
    """Press the admin page's button for ``action`` on ``question``; how long each vote
    page took to show ``expected`` as its heading, without a reload (page clocks agree:
    one machine)."""
    for page in voters:
        page.evaluate("""() => {
            window.switchedAt = null;
            new MutationObserver(() => {
                if (window.switchedAt === null) window.switchedAt = Date.now();
            }).observe(document.getElementById("main"), {childList: true});
        }""")
    pressed_at = admin.evaluate("Date.now()")
    admin.get_by_role("button", name=f"{action} \u201c{question}\u201d").click()
    took = []
    for page in voters:
        expect(page.locator("#question")).to_have_text(expected)
        took.append(page.evaluate("window.switchedAt") - pressed_at)
    return took


def decoded_qr(page: Page, tmp_path: Path) -> str:
    """What a phone reads from the page's QR code (zbarimg, from a screenshot of it)."""
    if shutil.which("zbarimg") is None:
        pytest.skip("decoding the QR code needs zbarimg: `apt-get install zbar-tools` "
                    "(.ci/run does so)")
    image = tmp_path / "qr.png"
    page.locator("img.qr").screenshot(path=image)
    run = subprocess.run(["zbarimg", "--raw", "-q", str(image)], capture_output=True,
                         text=True, timeout=30, check=False)
    assert run.returncode == 0, f"zbarimg read no code: {run.stderr}"
    return run.stdout.strip()


def test_a_whole_session_run_from_the_admin_page(
        stack: LocalStack, browsing: Browsing, tmp_path: Path) -> None:
    """The presenter creates two polls on /admin and opens the first; two phones vote and
    the projector screen counts them; closing it and opening the second (results after
    closing) moves the vote pages within 2 s without a reload; its figures stay hidden
    until it closes; a vote for a closed poll is refused and said so; the projector's QR
    code reads as the vote page's address."""
    admin, _ = browsing.page(f"{stack.vote_url}/admin", viewport=PHONE)
    admin.get_by_label("The value of ADMIN_TOKEN").fill(TOKEN)
    admin.get_by_role("button", name="Use this token").click()
    expect(admin.locator("#token-state")).to_have_text(
        "A token is set for this tab; closing the tab forgets it.")
    first = create_on_admin_page(admin, "Tea or coffee?", "Tea, black\nCoffee", False)
    second = create_on_admin_page(admin, "Where do we meet next year?", "Lisbon\nOslo\nNairobi",
                                  True)
    phones = [browsing.page(stack.vote_url, viewport=PHONE)[0] for _ in range(2)]
    present = live(browsing.page(f"{stack.result_url}/present", viewport=PROJECTOR)[0])
    for page in (*phones, present):
        not_reloaded(page)

    took = switch_time_ms(admin, phones, "Open", "Tea or coffee?", "Tea or coffee?")
    expect(admin.locator("#open-now")).to_have_text("Open now: \u201cTea or coffee?\u201d")
    for phone, label in zip(phones, ("Tea, black", "Coffee"), strict=True):
        phone.get_by_role("radio", name=label).check()
        phone.get_by_role("button", name="Vote").click()
        expect(phone.locator(".receipt-item").first).to_have_attribute("data-status", "counted")
    expect(present.locator("#question")).to_have_text("Tea or coffee?")
    expect(present.locator('li[data-option="tea-black"] .votes')).to_have_text("1 vote")
    expect(present.locator('li[data-option="coffee"] .percent')).to_have_text("50.0%")
    expect(present.locator("#total")).to_have_text("2 votes")

    took += switch_time_ms(admin, phones, "Close", "Tea or coffee?", "No poll is open")
    expect(phones[0].locator(".closed")).to_contain_text("Voting opens when the presenter")
    expect(present.locator(".poll-state")).to_have_text("Voting is closed")
    expect(present.locator('li[data-option="coffee"] .votes')).to_have_text("1 vote")

    took += switch_time_ms(admin, phones, "Open", "Where do we meet next year?",
                           "Where do we meet next year?")
    print(f"the vote pages followed the presenter in {took} ms")
    assert max(took) < FOLLOWS_WITHIN_MS, took
    expect(present.locator("#question")).to_have_text("Where do we meet next year?")
    expect(present.locator(".poll-state")).to_have_text(
        "Voting is open: the figures show when it closes")
    for phone, label in zip(phones, ("Lisbon", "Oslo"), strict=True):
        phone.get_by_role("radio", name=label).check()
        phone.get_by_role("button", name="Vote").click()
        expect(phone.locator(".receipt-item").first).to_have_attribute("data-status", "counted")
    expect(present.locator("#total")).to_have_text("2 votes")
    expect(present.locator(".figures-later")).to_have_count(3)
    assert present.locator(".percent, .votes").count() == 0

    phones[1].evaluate("(poll) => { document.querySelector('input[name=poll]').value = poll; }",
                       first)
    phones[1].get_by_role("radio", name="Nairobi").check()
    phones[1].get_by_role("button", name="Vote").click()
    expect(phones[1].locator("#news")).to_have_text(
        "That question was closed before your vote arrived: it was not counted.")
    expect(phones[1].locator(".receipt-item")).to_have_count(2)  # no receipt for it

    admin.get_by_role("button", name="Close \u201cWhere do we meet next year?\u201d").click()
    expect(present.locator(".poll-state")).to_have_text("Voting is closed")
    expect(present.locator('li[data-option="lisbon"] .percent')).to_have_text("50.0%")
    expect(present.locator('li[data-option="nairobi"] .votes')).to_have_text("0 votes")
    expect(admin.locator(f'li.poll[data-poll="{second}"]')).to_have_attribute(
        "data-open", "false")
    expect(admin.locator("#open-now")).to_have_text("No poll is open: the vote page says so.")
    for page in (*phones, present):
        assert page.evaluate("window.notReloaded") is True
    assert decoded_qr(present, tmp_path) == stack.vote_url
    screenshot(admin, "admin-phone")
    browsing.assert_clean()


def test_the_admin_page_works_from_the_keyboard(stack: LocalStack, browsing: Browsing) -> None:
    """Token, new poll, results mode, create, open and close: all by keyboard, each control
    with a visible focus ring; after opening, the focus is on the button that closes."""
    admin, _ = browsing.page(f"{stack.vote_url}/admin")
    active = "document.activeElement"

    def tab_to(selector: str, most: int = 30) -> None:
        for _ in range(most):
            admin.keyboard.press("Tab")
            if admin.evaluate(f"{active}.matches({selector!r})"):
                ring = admin.evaluate(f"getComputedStyle({active}).outlineStyle")
                assert ring not in ("", "none"), f"{selector} shows no focus ring"
                return
        pytest.fail(f"Tab never reached {selector}")

    tab_to("#token")
    admin.keyboard.type(TOKEN)
    admin.keyboard.press("Enter")
    expect(admin.locator("#token-state")).to_contain_text("A token is set")
    tab_to("#new-question")
    admin.keyboard.type("Keyboard only?")
    admin.keyboard.press("Tab")
    admin.keyboard.type("Yes")
    admin.keyboard.press("Enter")
    admin.keyboard.type("No")
    tab_to("input[value=live]")
    admin.keyboard.press("ArrowDown")
    expect(admin.locator("input[value=after_close]")).to_be_checked()
    tab_to("#create-form button")
    admin.keyboard.press("Enter")
    expect(admin.locator("#admin-status")).to_contain_text("Created: \u201cKeyboard only?\u201d")
    poll = admin_poll_id(admin, "Keyboard only?")
    tab_to(f'li[data-poll="{poll}"] button.open')
    admin.keyboard.press("Enter")
    expect(admin.locator(f'li[data-poll="{poll}"]')).to_have_attribute("data-open", "true")
    assert admin.evaluate(f"{active}.matches('li[data-poll=\"{poll}\"] button.close')")
    admin.keyboard.press("Enter")
    expect(admin.locator(f'li[data-poll="{poll}"]')).to_have_attribute("data-open", "false")
    assert admin.evaluate(f"{active}.matches('li[data-poll=\"{poll}\"] button.open')")
    browsing.assert_clean()


def test_the_admin_page_is_off_without_a_token(environ: dict[str, str],
                                               redis_client: redis.Redis) -> None:
    """Without ADMIN_TOKEN, /admin is a 404 that says how to turn it on, as the API is."""
    with TestClient(create_vote_app(VoteSettings.from_env(environ))) as client:
        response = client.get("/admin")
    assert response.status_code == 404
    assert response.json() == {"error": "admin is off: set ADMIN_TOKEN to turn it on"}


# --- Static files and the join code --------------------------------------------------------

def test_static_files_are_named_by_content_cached_and_compressed(stack: LocalStack) -> None:
    """The pages link each static file by a digest of its content: that address is kept a
    year, any other is revalidated (304 with the ETag); pages and files are gzipped for a
    client that accepts it; the stream never is."""
    gzip = {"Accept-Encoding": "gzip"}
    pages = ((stack.vote_url, ""), (stack.vote_url, "/admin"), (stack.result_url, ""),
             (stack.result_url, "/present"))
    with httpx.Client(timeout=10) as client:
        for origin, path in pages:
            answer = client.get(f"{origin}{path}", headers=gzip)
            assert answer.headers["content-encoding"] == "gzip", path
            links = re.findall(r'(?:href|src)="(/static/[^"?]+)\?v=([0-9a-f]{12})"', answer.text)
            assert len(links) >= 3, answer.text[:500]
            for asset, digest in links:
                kept = client.get(f"{origin}{asset}?v={digest}", headers=gzip)
                assert kept.headers["cache-control"] == "public, max-age=31536000, immutable"
                if len(kept.content) > 1000:
                    assert kept.headers["content-encoding"] == "gzip", asset
                plain = client.get(f"{origin}{asset}")
                assert plain.headers["cache-control"] == "no-cache", asset
                again = client.get(f"{origin}{asset}",
                                   headers={"If-None-Match": plain.headers["etag"]})
                assert again.status_code == 304, asset
        with client.stream("GET", f"{stack.result_url}/stream", headers=gzip) as stream:
            assert "content-encoding" not in stream.headers
            assert stream.headers["content-type"].startswith("text/event-stream")


def test_the_join_code_is_the_vote_address(stack: LocalStack, browsing: Browsing,
                                           tmp_path: Path) -> None:
    """The results page shows the vote page's address as a link and as a QR code that
    reads as that address; the code is an SVG that browsers keep and revalidate."""
    page = live(browsing.page(stack.result_url, viewport=PHONE)[0])
    link = page.get_by_role("link", name=stack.vote_url.removeprefix("http://"))
    expect(link).to_have_attribute("href", stack.vote_url)
    expect(page.get_by_role("img", name=f"QR code that opens {stack.vote_url}")).to_be_visible()
    assert decoded_qr(page, tmp_path) == stack.vote_url
    answer = httpx.get(f"{stack.result_url}/join.svg", timeout=5)
    assert answer.headers["content-type"] == "image/svg+xml"
    assert answer.headers["cache-control"] == "public, max-age=3600"
    again = httpx.get(f"{stack.result_url}/join.svg", timeout=5,
                      headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304
    browsing.assert_clean()


# --- The audit: layouts, measured ----------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_the_vote_page_at_every_width_and_scheme(
        stack: LocalStack, polls: dict[str, str], browsing: Browsing, case: str) -> None:
    """One named radio group whose marks are not read and do not overlap the labels; no
    word broken across lines; the heading a few lines even on a phone; grid rows that differ
    by one option at most (never 3-3-3-1); no sideways scrolling; after a vote on a phone
    the confirmation and the receipt in view."""
    shown(stack, polls[case])
    question, labels = CASES[case].question, CASES[case].labels
    failures, table = [], []
    for size_name, size in SIZES.items():
        for scheme in SCHEMES:
            page, _ = browsing.page(stack.vote_url, viewport=size, color_scheme=scheme)
            group = page.get_by_role("radiogroup", name=question)
            expect(group).to_have_count(1)
            expect(group.get_by_role("radio")).to_have_count(len(labels))
            heard = group.aria_snapshot()
            assert all(f'radio "{label}"' in heard for label in labels), heard
            found = measure(page, "#question", ".option-label", ".option")
            overlaps = page.evaluate("""() => [...document.querySelectorAll(".option")].filter(
                (option) => {
                    const mark = option.querySelector(".mark").getBoundingClientRect();
                    const text = option.querySelector(".option-label").getBoundingClientRect();
                    return mark.right > text.left && text.right > mark.left
                        && mark.bottom > text.top && text.bottom > mark.top;
                }).length""")
            where = f"{size_name} {scheme}"
            table.append(f"{where}: heading {found['headingLines']} lines, rows "
                         f"{found['gridRows']}, page {found['height']} px tall")
            if found["headingLines"] > HEADING_LINES[size_name]:
                failures.append(f"{where}: the heading runs {found['headingLines']} lines")
            if found["broken"]:
                failures.append(f"{where}: words broken across lines: {found['broken']}")
            if max(found["gridRows"]) - min(found["gridRows"]) > 1:
                failures.append(f"{where}: unbalanced grid rows {found['gridRows']}")
            if found["sideways"] > 0:
                failures.append(f"{where}: scrolls sideways by {found['sideways']} px")
            if overlaps:
                failures.append(f"{where}: {overlaps} marks overlap their labels")
            if size is PHONE:  # the next-to-last option: the last keeps its single vote
                page.get_by_role("radio", name=labels[-2]).check()
                page.get_by_role("button", name="Vote").click()
                page.wait_for_function("""() => {
                    const inView = (e) => { const r = e.getBoundingClientRect();
                                            return r.top >= 0 && r.bottom <= innerHeight; };
                    const first = document.querySelector(".receipt-item");
                    return first && inView(document.getElementById("status")) && inView(first);
                }""")
                expect(page.locator("#status")).to_contain_text(f"You voted for {labels[-2]}")
                if scheme == "light" or case == "10":
                    dark = "" if scheme == "light" else "-dark"
                    screenshot(page, f"vote-phone-{case}{dark}", full_page=False)
    print("\n".join(table))
    assert failures == [], failures
    browsing.assert_clean()


def thinnest_bar(page: Page) -> None:
    """The ~2 % option's bar (one vote of the fifty the poll started with, and of the few
    the vote page tests added): its share of its track, and a track whose corners are too
    small to clip it to a crescent."""
    thinnest = page.locator("li.result", has_text=LONG_LABELS[-1])
    share = float(thinnest.locator(".percent").inner_text().rstrip("%"))
    assert 1.5 <= share <= 2.0, share
    measured = """(bar) => ({width: bar.querySelector(".fill").getBoundingClientRect().width,
                             height: bar.clientHeight, track: bar.clientWidth,
                             radius: parseFloat(getComputedStyle(bar).borderTopLeftRadius)})"""
    # The bar grows to its width in 0.6 s after the page loads: wait for the end of it.
    page.wait_for_function(f"""(share) => {{
        const bar = ({measured})(document.querySelectorAll("li.result .bar")[9]);
        return Math.abs(bar.width - share / 100 * bar.track) <= 1;
    }}""", arg=share)
    bar = thinnest.locator(".bar").evaluate(measured)
    print(f"the {share} % bar: {bar}")
    assert bar["radius"] <= bar["height"] / 4, f"a rounded track clips a 2 % bar: {bar}"


@pytest.mark.parametrize("case", list(CASES))
def test_the_results_page_at_every_width_and_scheme(
        stack: LocalStack, polls: dict[str, str], browsing: Browsing, case: str) -> None:
    """No word broken across lines, the heading a few lines, no sideways scrolling; at
    1080p every option above the fold and the operator panel small; a link to the vote
    page; bars with square ends, so a 2 % bar is a bar, not a crescent."""
    shown(stack, polls[case])
    failures, table = [], []
    for size_name, size in SIZES.items():
        for scheme in SCHEMES:
            page = live(browsing.page(stack.result_url, viewport=size, color_scheme=scheme)[0])
            expect(page.locator("#pipeline")).to_have_attribute("data-state", "ok")
            found = measure(page, "#question", ".label", "li.result")
            panel = page.locator("#pipeline").bounding_box()
            assert panel is not None
            panel_share = panel["width"] * panel["height"] / (size["width"] * size["height"])
            where = f"{size_name} {scheme}"
            table.append(f"{where}: heading {found['headingLines']} lines, last option ends "
                         f"at {found['lastRowBottom']:.0f} px, panel {panel_share:.1%} of "
                         "the screen")
            if found["headingLines"] > HEADING_LINES[size_name]:
                failures.append(f"{where}: the heading runs {found['headingLines']} lines")
            if found["broken"]:
                failures.append(f"{where}: words broken across lines: {found['broken']}")
            if found["sideways"] > 0:
                failures.append(f"{where}: scrolls sideways by {found['sideways']} px")
            if size is PROJECTOR and found["lastRowBottom"] > size["height"]:
                failures.append(f"{where}: the last option ends at {found['lastRowBottom']} px")
            if size is PROJECTOR and panel_share > 0.05:
                failures.append(f"{where}: the operator panel takes {panel_share:.0%}")
            join = page.get_by_role("link", name=stack.vote_url.removeprefix("http://"))
            expect(join).to_have_attribute("href", stack.vote_url)
            if scheme == "light" and size is PHONE:
                screenshot(page, f"results-phone-{case}", full_page=True)
            if scheme == "light" and size is PROJECTOR and case == "10":
                thinnest_bar(page)
    print("\n".join(table))
    assert failures == [], failures
    browsing.assert_clean()


@pytest.mark.parametrize("case", list(CASES))
def test_the_projector_screen_fits_1080p_and_reads_from_the_back(
        stack: LocalStack, polls: dict[str, str], browsing: Browsing, case: str) -> None:
    """At 1920x1080, light and dark: no scrolling either way, every label, percentage,
    count and the total at least 40 px, the rows across the screen's width, the join code
    and address shown, no operator panel, no word broken across lines."""
    shown(stack, polls[case])
    failures, table = [], []
    for scheme in SCHEMES:
        page = live(browsing.page(f"{stack.result_url}/present", viewport=PROJECTOR,
                                  color_scheme=scheme)[0])
        found = measure(page, "#question", ".label", "li.result")
        sizes = page.evaluate("""() => Object.fromEntries(
            ["h1", ".label", ".percent", ".votes", "#total", ".join-address"].map((s) => [s,
                Math.min(...[...document.querySelectorAll(s)].map(
                    (e) => parseFloat(getComputedStyle(e).fontSize)))]))""")
        width = page.evaluate("document.getElementById('results').getBoundingClientRect().width")
        table.append(f"{scheme}: page {found['height']} px tall, heading "
                     f"{found['headingLines']} lines, rows {width:.0f} px wide, font sizes "
                     f"{ {k: round(v, 1) for k, v in sizes.items()} }")
        if found["height"] > PROJECTOR["height"] or found["sideways"] > 0:
            failures.append(f"{scheme}: scrolls ({found['height']} px tall)")
        small = {k: v for k, v in sizes.items() if k != "h1" and v < MIN_PROJECTED_PX}
        if small:
            failures.append(f"{scheme}: smaller than {MIN_PROJECTED_PX} px: {small}")
        if width < 0.9 * PROJECTOR["width"]:
            failures.append(f"{scheme}: the rows use {width:.0f} of {PROJECTOR['width']} px")
        if found["broken"]:
            failures.append(f"{scheme}: words broken across lines: {found['broken']}")
        if found["headingLines"] > 2:
            failures.append(f"{scheme}: the heading runs {found['headingLines']} lines")
        expect(page.locator("img.qr")).to_be_visible()
        assert page.locator("#pipeline").count() == 0
        if case != "2-long":
            screenshot(page, f"present-1080p-{case}" + ("" if scheme == "light" else "-dark"),
                       full_page=False)
    print("\n".join(table))
    assert failures == [], failures
    browsing.assert_clean()


# --- Figures a person can read ---------------------------------------------------------------

COUNT_DISPLAYED = """() => {
    window.shownAt = [];
    window.flashed = 0;
    const region = document.getElementById("poll-region");
    new MutationObserver(() => window.shownAt.push(performance.now())).observe(region,
        {subtree: true, childList: true, characterData: true});
    new MutationObserver((changes) => {
        window.flashed += changes.filter((c) => c.target.classList.contains("changed")
            && !(c.oldValue || "").includes("changed")).length;
    }).observe(region, {subtree: true, attributes: true, attributeFilter: ["class"],
                        attributeOldValue: true});
}"""


def displayed_states(page: Page) -> list[float]:
    """When the figures on screen changed (ms), changes within 50 ms as one state."""
    states: list[float] = []
    for at in page.evaluate("window.shownAt"):
        if not states or at - states[-1] > 50:
            states.append(at)
    return states


def most_in_a_second(states: list[float]) -> int:
    return max((sum(start <= at < start + 1000 for at in states) for start in states),
               default=0)


def test_figures_change_at_most_twice_a_second_under_a_steady_vote_load(
        stack: LocalStack, polls: dict[str, str], browsing: Browsing) -> None:
    """At 20 votes a second for 6 s, the results page and the projector screen change
    their figures at most twice in any second, each change flashed once, and end on the
    counted total."""
    shown(stack, polls["10"])
    pages = [live(browsing.page(url, viewport=PROJECTOR)[0])
             for url in (stack.result_url, f"{stack.result_url}/present")]
    for page in pages:
        page.evaluate(COUNT_DISPLAYED)
    stop = threading.Event()

    sent = [0]

    def steady_votes() -> None:  # each vote a new person's: no cookie kept
        with httpx.Client(timeout=5) as client:
            while not stop.wait(0.05):
                client.cookies.clear()
                client.post(f"{stack.vote_url}/api/vote",
                            json={"vote": f"o{1 + sent[0] % 10}"}).raise_for_status()
                sent[0] += 1

    before = stack.results()["total"]
    sender = threading.Thread(target=steady_votes)
    started = time.monotonic()
    sender.start()
    try:
        stop.wait(6)
    finally:
        stop.set()
        sender.join()
    elapsed = time.monotonic() - started
    total = wait_until(lambda: (now := stack.results()["total"]) == before + sent[0] and now,
                       15, "every vote counted")
    for page, name in zip(pages, ("results page", "projector screen"), strict=True):
        expect(page.locator("#total")).to_have_text(f"{total:,} votes")
        states = displayed_states(page)
        print(f"{name}: {len(states)} displayed states in {elapsed:.1f} s of votes, at most "
              f"{most_in_a_second(states)} in a second; {page.evaluate('window.flashed')} "
              "flashes")
        assert most_in_a_second(states) <= MOST_CHANGES_PER_S, states
        assert len(states) >= 4, "the figures hardly moved"
        assert page.evaluate("window.flashed") > 0
    browsing.assert_clean()
