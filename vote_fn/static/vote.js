// Progressive enhancement: vote without a page reload, retry a failed send with the same
// vote id (so it still counts once), follow the receipt until the vote is counted, and
// follow the open poll: when the presenter opens or closes one, the poll's part of the page
// is fetched again and swapped in (the server's template is its only markup).
// Without JavaScript the plain form post does the voting.
"use strict";
(() => {
  const main = document.getElementById("main");
  const panel = document.getElementById("receipt");
  const list = document.getElementById("receipts");
  const hint = document.getElementById("receipt-hint");
  const news = document.getElementById("news");
  const receiptNews = document.getElementById("receipt-announce");
  const pollNews = document.getElementById("poll-announce");
  if (!main || !window.fetch || !window.crypto || !window.swapPollRegion) return;
  // Where receipts are checked (result_fn); without it the receipt is its id alone.
  const resultsUrl = (main.dataset.resultsUrl || "").replace(/\/+$/, "");
  const pollUrl = main.dataset.pollUrl;

  const KEEP_RECEIPTS = 3;
  const SEND_ATTEMPTS = 3;
  // vote_fn's copy of the open poll is at most 0.5 s old: a change shows within 1.5 s.
  const FOLLOW_EVERY_MS = 1000;
  const STATUS_TEXT = {
    sent: "Sent, not counted yet",
    queued: "Sent, still waiting in the queue",
    counted: "Counted",
    superseded: "Superseded by your later vote",
  };
  // newest first: {voteId, voter, acceptedMs, poll, label, status, sentAt, item}
  const receipts = [];
  let checkTimer = null;
  let checkDelay = 250;

  const region = () => document.getElementById("poll-region");
  const status = () => document.getElementById("status");
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const motion = () => (window.matchMedia("(prefers-reduced-motion: reduce)").matches
    ? "auto" : "smooth");

  class PollClosed extends Error {}

  const newVoteId = () => {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  };

  const retryAfterMs = (response, fallbackMs) => {
    const seconds = Number(response && response.headers.get("Retry-After"));
    return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : fallbackMs;
  };

  // On a phone the confirmation and the receipt are below the options: scroll just enough
  // to show both (the confirmation first, if both do not fit).
  const bringIntoView = () => {
    const top = status().getBoundingClientRect().top;
    const bottom = (panel.hidden ? status() : panel).getBoundingClientRect().bottom;
    const margin = 16;
    let by = 0;
    if (bottom > window.innerHeight - margin) by = bottom - window.innerHeight + margin;
    if (top - by < margin) by = top - margin;
    if (by !== 0) window.scrollBy({ top: by, behavior: motion() });
  };

  // One vote id for every attempt: a retry after a lost answer cannot count twice.
  const send = async (form, option) => {
    const voteId = newVoteId();
    const poll = form.elements.poll.value;
    for (let attempt = 1; ; attempt += 1) {
      let response = null;
      try {
        response = await fetch(new URL("api/vote", form.action), {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ vote: option, vote_id: voteId, poll }),
          credentials: "same-origin",
        });
      } catch (error) {
        if (attempt >= SEND_ATTEMPTS) throw new Error("the network is unavailable");
      }
      if (response && response.status === 429) {
        const seconds = Math.ceil(retryAfterMs(response, 60000) / 1000);
        throw new Error(`you have sent too many votes in a short time; try again in ${seconds} s`);
      }
      if (response && response.status === 409) throw new PollClosed();
      if (response && response.status !== 503) {
        const body = await response.json().catch(() => ({}));
        if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
        return body;
      }
      if (attempt >= SEND_ATTEMPTS) throw new Error("votes cannot be accepted right now");
      status().textContent = "Still sending your vote\u2026";
      await wait(Math.min(retryAfterMs(response, attempt * 1000), 5000));
    }
  };

  const markChoice = (form, input, label) => {
    for (const option of form.querySelectorAll(".option")) {
      option.classList.toggle("chosen", option.contains(input));
    }
    const line = status();
    line.textContent = "";
    const strong = document.createElement("strong");
    strong.textContent = label;
    line.append("You voted for ", strong, ". You can change your vote at any time.");
  };

  const showStatus = (receipt, value) => {
    receipt.status = value;
    receipt.item.dataset.status = value;
    const state = receipt.item.querySelector(".receipt-status");
    if (state) state.textContent = STATUS_TEXT[value];
    if (value === "counted" && receipt === receipts[0]) {
      receiptNews.textContent = `Your vote for ${receipt.label} is counted.`;
    }
  };

  const addReceipt = (answer, label, poll) => {
    const item = document.createElement("li");
    item.className = "receipt-item";
    const what = document.createElement("span");
    what.className = "receipt-option";
    what.textContent = label;
    // Shown for the eye, to quote; a screen reader would spell out 32 characters.
    const id = document.createElement("code");
    id.className = "receipt-id";
    id.setAttribute("aria-hidden", "true");
    id.textContent = answer.vote_id;
    item.append(what, id);
    if (resultsUrl) {
      const state = document.createElement("span");
      state.className = "receipt-status";
      item.append(state);
    }
    const receipt = { voteId: answer.vote_id, voter: answer.voter, acceptedMs: answer.accepted_ms,
                      poll, label, status: "sent", sentAt: Date.now(), item };
    receipts.unshift(receipt);
    showStatus(receipt, "sent");
    list.prepend(item);
    for (const old of receipts.splice(KEEP_RECEIPTS)) old.item.remove();
    panel.hidden = false;
    hint.textContent = resultsUrl
      ? "The receipt id identifies your vote; its status here updates by itself."
      : "The receipt id identifies your vote.";
  };

  // A receipt is settled once superseded, or once counted if it is its poll's newest: an
  // older one of the same poll waits for the later vote to replace it.
  const unsettled = () => receipts.filter((receipt, index) => receipt.status !== "superseded"
    && !(receipt.status === "counted"
         && !receipts.slice(0, index).some((later) => later.poll === receipt.poll)));

  const check = async () => {
    checkTimer = null;
    await Promise.all(unsettled().map(async (receipt) => {
      const query = new URLSearchParams({ voter: receipt.voter, ts: String(receipt.acceptedMs),
                                          poll: receipt.poll });
      try {
        const response = await fetch(
          `${resultsUrl}/api/receipts/${encodeURIComponent(receipt.voteId)}?${query}`,
          { credentials: "omit", cache: "no-store" });
        if (!response.ok) return;  // unavailable for now: ask again later
        const answer = await response.json();
        if (answer.status === "counted" || answer.status === "superseded") {
          showStatus(receipt, answer.status);
        } else if (Date.now() - receipt.sentAt > 15000 && receipt.status !== "queued") {
          showStatus(receipt, "queued");
        }
      } catch (error) {
        // The results service is unreachable for now: ask again later.
      }
    }));
    checkDelay = Math.min(checkDelay * 1.5, 5000);
    scheduleCheck();
  };

  const scheduleCheck = () => {
    if (resultsUrl && checkTimer === null && unsettled().length > 0) {
      checkTimer = setTimeout(check, checkDelay);
    }
  };

  // --- Following the open poll ------------------------------------------------------------
  let swapping = null;

  // The page as the server renders it now gives its poll's part (common/static/region.js).
  const swapIn = async () => {
    await window.swapPollRegion();
    const question = document.getElementById("question").textContent;
    return region().dataset.poll ? `New question: ${question}` : "Voting is closed.";
  };

  // Ask which poll is open; show it if it is not the one shown. Returns what changed, if
  // anything, for the caller to say.
  const follow = async () => {
    if (swapping) return swapping;
    const response = await fetch(pollUrl, { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) return null;
    const open = await response.json();
    if ((open.open ? open.poll : "") === region().dataset.poll) return null;
    swapping = swapIn().finally(() => { swapping = null; });
    return swapping;
  };

  const followed = (change) => {
    if (!change) return;
    news.textContent = "";  // it was about the poll shown before
    pollNews.textContent = change;
  };

  const followLoop = async () => {
    if (!document.hidden) {
      // vote_fn unreachable for now: ask again on the next round.
      await follow().then(followed, () => {});
    }
    setTimeout(followLoop, FOLLOW_EVERY_MS);
  };

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) follow().then(followed, () => {});
  });

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.id !== "vote-form") return;
    const input = form.querySelector("input[name=vote]:checked");
    if (!input) return;  // the browser asks for a choice first (the radios are required)
    event.preventDefault();
    const label = input.closest(".option").querySelector(".option-label").textContent.trim();
    form.setAttribute("aria-busy", "true");
    status().textContent = "Sending your vote\u2026";
    news.textContent = "";
    try {
      const answer = await send(form, input.value);
      markChoice(form, input, label);
      addReceipt(answer, label, form.elements.poll.value);
      checkDelay = 250;
      clearTimeout(checkTimer);
      checkTimer = null;
      scheduleCheck();
      bringIntoView();
    } catch (error) {
      if (error instanceof PollClosed) {
        const change = await follow().catch(() => null);
        if (change) pollNews.textContent = change;
        news.textContent = "That question was closed before your vote arrived: it was not "
          + `counted.${change && region().dataset.poll ? " Here is the question open now." : ""}`;
        news.scrollIntoView({ block: "nearest", behavior: motion() });
      } else {
        status().textContent = `Your vote was not recorded: ${error.message}.`;
      }
    } finally {
      form.removeAttribute("aria-busy");
    }
  });

  setTimeout(followLoop, FOLLOW_EVERY_MS);
})();
