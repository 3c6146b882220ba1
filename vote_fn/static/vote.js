// Progressive enhancement: vote without a page reload, retry a failed send with the same
// vote id (so it still counts once), and follow the receipt until the vote is counted.
// Without JavaScript the plain form post does the voting.
"use strict";
(() => {
  const form = document.getElementById("vote-form");
  const status = document.getElementById("status");
  const panel = document.getElementById("receipt");
  const list = document.getElementById("receipts");
  const hint = document.getElementById("receipt-hint");
  const receiptNews = document.getElementById("receipt-announce");
  const main = document.getElementById("main");
  if (!form || !main || !window.fetch || !window.crypto) return;
  // Where receipts are checked (result_fn); without it the receipt is its id alone.
  const resultsUrl = (main.dataset.resultsUrl || "").replace(/\/+$/, "");

  const KEEP_RECEIPTS = 3;
  const SEND_ATTEMPTS = 3;
  const STATUS_TEXT = {
    sent: "Sent, not counted yet",
    queued: "Sent, still waiting in the queue",
    counted: "Counted",
    superseded: "Superseded by your later vote",
  };
  const receipts = [];  // newest first: {voteId, voter, acceptedMs, label, status, sentAt, item}
  let checkTimer = null;
  let checkDelay = 250;

  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const newVoteId = () => {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  };

  const retryAfterMs = (response, fallbackMs) => {
    const seconds = Number(response && response.headers.get("Retry-After"));
    return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : fallbackMs;
  };

  // One vote id for every attempt: a retry after a lost answer cannot count twice.
  const send = async (option) => {
    const voteId = newVoteId();
    for (let attempt = 1; ; attempt += 1) {
      let response = null;
      try {
        response = await fetch(new URL("api/vote", form.action), {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ vote: option, vote_id: voteId }),
          credentials: "same-origin",
        });
      } catch (error) {
        if (attempt >= SEND_ATTEMPTS) throw new Error("the network is unavailable");
      }
      if (response && response.status === 429) {
        const seconds = Math.ceil(retryAfterMs(response, 60000) / 1000);
        throw new Error(`you have sent too many votes in a short time; try again in ${seconds} s`);
      }
      if (response && response.status !== 503) {
        const body = await response.json().catch(() => ({}));
        if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
        return body;
      }
      if (attempt >= SEND_ATTEMPTS) throw new Error("votes cannot be accepted right now");
      status.textContent = "Still sending your vote\u2026";
      await wait(Math.min(retryAfterMs(response, attempt * 1000), 5000));
    }
  };

  const markChoice = (button) => {
    for (const other of form.querySelectorAll("button.option")) {
      const chosen = other === button;
      other.classList.toggle("chosen", chosen);
      other.setAttribute("aria-pressed", chosen ? "true" : "false");
    }
    status.textContent = "";
    const strong = document.createElement("strong");
    strong.textContent = button.textContent.trim();
    status.append("You voted for ", strong, ". You can change your vote at any time.");
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

  const addReceipt = (answer, label) => {
    const item = document.createElement("li");
    item.className = "receipt-item";
    const what = document.createElement("span");
    what.className = "receipt-option";
    what.textContent = label;
    const id = document.createElement("code");
    id.className = "receipt-id";
    id.textContent = answer.vote_id;
    item.append(what, id);
    if (resultsUrl) {
      const state = document.createElement("span");
      state.className = "receipt-status";
      item.append(state);
    }
    const receipt = { voteId: answer.vote_id, voter: answer.voter, acceptedMs: answer.accepted_ms,
                      label, status: "sent", sentAt: Date.now(), item };
    receipts.unshift(receipt);
    showStatus(receipt, "sent");
    list.prepend(item);
    for (const old of receipts.splice(KEEP_RECEIPTS)) old.item.remove();
    panel.hidden = false;
    hint.textContent = resultsUrl
      ? "The receipt id identifies your vote; its status here updates by itself."
      : "The receipt id identifies your vote.";
  };

  // The newest receipt is settled once counted; an older one once a later vote replaced it.
  const unsettled = () => receipts.filter((receipt, index) =>
    receipt.status !== "superseded" && !(index === 0 && receipt.status === "counted"));

  const check = async () => {
    checkTimer = null;
    await Promise.all(unsettled().map(async (receipt) => {
      const query = new URLSearchParams({ voter: receipt.voter, ts: String(receipt.acceptedMs) });
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

  form.addEventListener("submit", async (event) => {
    const button = event.submitter;
    if (!button || !button.value) return;
    event.preventDefault();
    form.setAttribute("aria-busy", "true");
    status.textContent = "Sending your vote\u2026";
    try {
      const answer = await send(button.value);
      markChoice(button);
      addReceipt(answer, button.textContent.trim());
      checkDelay = 250;
      clearTimeout(checkTimer);
      checkTimer = null;
      scheduleCheck();
    } catch (error) {
      status.textContent = `Your vote was not recorded: ${error.message}.`;
    } finally {
      form.removeAttribute("aria-busy");
    }
  });
})();
