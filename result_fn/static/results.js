// Live results over Server-Sent Events. The page reopens the stream itself, with backoff:
// EventSource gives up for good on an HTTP error (a 503 from a busy or restarting
// instance), and a stream the server ends after its lifetime must be reopened anyway.
// Screen readers hear a summary at most every 10 s and each change of the pipeline state.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const connection = $("connection");
  const total = $("total");
  const announce = $("announce");
  const pipeline = $("pipeline");
  const message = $("pipeline-message");
  const counted = $("counted");
  const lastBatch = $("last-batch");
  const queued = $("queued");

  const ANNOUNCE_EVERY_MS = 10000;
  const LOST_ANNOUNCE_AFTER_MS = 5000;
  const MAX_BACKOFF_MS = 10000;
  const number = new Intl.NumberFormat("en");
  const votes = (n) => `${number.format(n)} vote${n === 1 ? "" : "s"}`;
  const percent = (p) => `${Number(p).toFixed(1)}%`;

  const ago = (ms) => {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 2) return "just now";
    if (s < 90) return `${s} s ago`;
    const min = Math.round(s / 60);
    if (min < 90) return `${min} min ago`;
    const h = Math.round(min / 60);
    return h < 36 ? `${h} h ago` : `${Math.round(h / 24)} days ago`;
  };

  const say = (text) => { announce.textContent = text; };

  // Results: the first change is said at once, later ones at most every ANNOUNCE_EVERY_MS,
  // always with the newest figures.
  let saidAt = 0;
  let sayTimer = null;
  let toSay = null;
  const announceResults = (results) => {
    toSay = results;
    if (sayTimer !== null) return;
    sayTimer = setTimeout(() => {
      sayTimer = null;
      saidAt = Date.now();
      const parts = toSay.options.map((o) => `${o.label} ${percent(o.percent)}`);
      say(`${parts.join(", ")}; ${toSay.total ? votes(toSay.total) : "no votes yet"}.`);
    }, Math.max(0, saidAt + ANNOUNCE_EVERY_MS - Date.now()));
  };

  const setBars = () => {
    for (const fill of document.querySelectorAll(".fill")) {
      fill.style.width = `${Math.min(100, Math.max(0, Number(fill.dataset.percent) || 0))}%`;
    }
  };

  const tick = () => {
    if (pipeline.dataset.state === "unknown") return;
    const at = lastBatch.dataset.at;
    lastBatch.textContent = at ? ago(Date.now() - Number(at)) : "none yet";
  };

  let shownVersion = null;
  let pipelineState = pipeline.dataset.state;
  const render = (results) => {
    for (const option of results.options) {
      const row = document.querySelector(`li[data-option="${CSS.escape(option.id)}"]`);
      if (!row) continue;
      row.querySelector(".votes").textContent = votes(option.votes);
      row.querySelector(".percent").textContent = percent(option.percent);
      row.querySelector(".fill").dataset.percent = option.percent;
    }
    setBars();
    total.textContent = results.total ? votes(results.total) : "No votes yet";
    counted.textContent = number.format(results.total);
    const status = results.pipeline;
    if (status) {
      pipeline.dataset.state = status.state;
      message.textContent = status.message;
      lastBatch.dataset.at = status.last_batch_at_ms ?? "";
      queued.textContent = number.format(status.queued_at_last_look);
      tick();
      if (status.state !== pipelineState) say(status.message);
      pipelineState = status.state;
    }
    if (shownVersion !== null && results.version !== shownVersion) announceResults(results);
    shownVersion = results.version;
  };

  const setConnection = (state, text) => {
    connection.dataset.state = state;
    connection.textContent = text;
  };

  setBars();
  setInterval(tick, 1000);
  tick();
  if (!window.EventSource) {
    setConnection("static", "Not live in this browser: reload the page for new figures");
    return;
  }

  // The app's path prefix (uvicorn --root-path), for the stream's address.
  const base = document.querySelector("main").dataset.base || "";
  let source = null;
  let failures = 0;
  let retryTimer = null;
  let lostTimer = null;
  let lostSaid = false;

  const live = () => {
    setConnection("live", "Live");
    clearTimeout(lostTimer);
    lostTimer = null;
    if (lostSaid) say("Live updates are back.");
    lostSaid = false;
  };

  const connect = () => {
    retryTimer = null;
    source = new EventSource(`${base}/stream`);
    source.onopen = live;
    source.onmessage = (event) => {
      failures = 0;
      live();
      render(JSON.parse(event.data));
    };
    source.onerror = () => {
      source.close();
      source = null;
      setConnection("reconnecting", "Reconnecting\u2026");
      if (lostTimer === null && !lostSaid) {
        lostTimer = setTimeout(() => {
          lostSaid = true;
          say("Live updates are interrupted; reconnecting.");
        }, LOST_ANNOUNCE_AFTER_MS);
      }
      // Full jitter, so viewers of a restarted instance do not all return at once.
      const ceiling = Math.min(500 * 2 ** failures, MAX_BACKOFF_MS);
      failures += 1;
      retryTimer = setTimeout(connect, ceiling / 2 + Math.random() * ceiling / 2);
    };
  };

  window.addEventListener("online", () => {
    if (retryTimer !== null) {
      clearTimeout(retryTimer);
      connect();
    }
  });
  setConnection("connecting", "Connecting\u2026");
  connect();
})();
