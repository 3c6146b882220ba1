// Live results over Server-Sent Events, for the results page and the projector screen.
// - The stream sends the whole document first and after any change of the poll, its state
//   or the pipeline's, and "counts" events in between; a change of poll or state fetches
//   the page again and swaps its poll part in (the server's template is its only markup).
// - Figures change on screen at most every PACE_MS, however fast votes come, each change
//   marked by a short animation (none with reduced motion).
// - One status tells one story: the connection and the pipeline together; ages grow from
//   what the server measured, on the server's clock (learnt when the page loaded).
// - The page reopens the stream itself, with backoff: EventSource gives up for good on an
//   HTTP error (a 503 from a busy or restarting instance), and a stream the server ends
//   after its lifetime must be reopened anyway.
// Screen readers hear a summary at most every 10 s and each change of the counting state.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const main = document.querySelector("main");
  const connection = $("connection");
  const announce = $("announce");
  const panel = $("pipeline");  // the results page's only, as the ages below

  const PACE_MS = 600;  // at most two changes in any second
  const AGES_EVERY_MS = 5000;
  const ANNOUNCE_EVERY_MS = 10000;
  const LOST_ANNOUNCE_AFTER_MS = 5000;
  const MAX_BACKOFF_MS = 10000;
  const number = new Intl.NumberFormat("en");
  const votes = (n) => `${number.format(n)} vote${n === 1 ? "" : "s"}`;
  const percent = (p) => `${Number(p).toFixed(1)}%`;
  // The server's clock, as the page's HTML said it when it was made.
  const offsetMs = Number(main.dataset.nowMs) - Date.now() || 0;
  const serverNow = () => Date.now() + offsetMs;
  const base = main.dataset.base || "";

  const ago = (ms) => {
    const s = Math.max(0, ms / 1000);
    if (s < 10) return "a few seconds ago";
    if (s < 60) return `${Math.floor(s / 10) * 10} s ago`;
    const min = Math.floor(s / 60);
    if (min < 60) return `${min} min ago`;
    const h = Math.floor(min / 60);
    return h < 48 ? `${h} h ago` : `${Math.floor(h / 24)} days ago`;
  };

  const say = (text) => { announce.textContent = text; };
  const setText = (element, text) => {
    if (!element || element.textContent === text) return false;
    element.textContent = text;
    return true;
  };

  let doc = null;  // the newest results document, with the counts events applied
  let linkState = "static";  // the connection: static, connecting, live or reconnecting

  // --- The status: the connection and the pipeline, as one story --------------------------
  const PILL = { ok: "Live", waiting: "Waiting for the first count",
                 stalled: "Counting has stopped", down: "Figures may be out of date" };
  const LINK_TEXT = { connecting: "Connecting\u2026", reconnecting: "Reconnecting\u2026" };
  const NOT_CONNECTED = "Not connected to the results service: the figures may be out of "
    + "date. Reconnecting\u2026";
  const pipelineState = () => (linkState === "live" && doc ? doc.pipeline.state : "unknown");

  const showAges = () => {
    if (!panel || !doc) return;
    const status = doc.pipeline;
    setText($("last-batch"), status.last_batch_at_ms === null ? "none yet"
      : ago(serverNow() - status.last_batch_at_ms));
    const stalled = pipelineState() === "stalled" && status.worker_seen_age_s !== null;
    $("worker-seen-row").hidden = !stalled;
    if (stalled) {
      const seenAt = status.measured_at_ms - status.worker_seen_age_s * 1000;
      setText($("worker-seen"), ago(serverNow() - seenAt));
    }
  };

  let toldState = panel ? panel.dataset.state : null;
  const showStatus = () => {
    const state = pipelineState();
    connection.dataset.state = linkState;
    connection.dataset.pipeline = state;
    setText(connection, linkState === "live" ? PILL[state] || "Live" : LINK_TEXT[linkState]);
    if (!panel || !doc) return;  // before the first event the panel says what the page said
    panel.dataset.state = state;
    const message = state === "unknown" ? NOT_CONNECTED : doc.pipeline.message;
    setText($("pipeline-message"), message);
    setText($("queued"), number.format(doc.pipeline.queued_at_last_look));
    showAges();
    if (state !== toldState && linkState === "live") say(message);
    toldState = state;
  };

  // --- The figures, paced -----------------------------------------------------------------
  const bump = (element) => {
    element.classList.remove("changed");
    void element.offsetWidth;  // restart the animation
    element.classList.add("changed");
  };

  const showFigures = () => {
    for (const option of doc.options) {
      const row = document.querySelector(`li[data-option="${CSS.escape(option.id)}"]`);
      if (!row || option.votes === null) continue;
      const count = row.querySelector(".votes");
      if (setText(count, votes(option.votes))) bump(count);
      setText(row.querySelector(".percent"), percent(option.percent));
      const fill = row.querySelector(".fill");
      if (fill) fill.style.width = `${Math.min(100, Math.max(0, option.percent))}%`;
    }
    const total = $("total");
    if (setText(total, doc.total ? votes(doc.total) : "No votes yet")) bump(total);
  };

  // ``run`` at most once every ``everyMs``: a call meanwhile is run at the end of the
  // wait, once, whatever the number of calls (it shows the newest state anyway).
  const paced = (everyMs, run) => {
    let ranAt = -Infinity;
    let timer = null;
    const now = () => {
      clearTimeout(timer);
      timer = null;
      ranAt = performance.now();
      run();
    };
    const soon = () => {
      if (timer !== null) return;
      timer = setTimeout(now, Math.max(0, ranAt + everyMs - performance.now()));
    };
    return { soon, now };
  };

  const figures = paced(PACE_MS, showFigures);

  // Results: the first change is said at once, later ones at most every ANNOUNCE_EVERY_MS,
  // always with the newest figures.
  const announceResults = paced(ANNOUNCE_EVERY_MS, () => {
    const totals = doc.total ? votes(doc.total) : "no votes yet";
    if (doc.options.some((o) => o.votes === null)) {
      say(`${totals} so far; the figures show when voting closes.`);
      return;
    }
    const parts = doc.options.map((o) => `${o.label} ${percent(o.percent)}`);
    say(`${parts.join(", ")}; ${totals}.`);
  }).soon;

  // --- The poll's part of the page --------------------------------------------------------
  const region = () => $("poll-region");
  const sameShape = () => {
    const shown = region();
    const rows = [...shown.querySelectorAll("li[data-option]")].map((row) => row.dataset.option);
    return shown.dataset.poll === doc.poll && shown.dataset.open === String(doc.open)
      && rows.join(" ") === doc.options.map((o) => o.id).join(" ");
  };

  let swapping = false;
  const swapIn = async () => {
    swapping = true;
    try {
      await window.swapPollRegion();  // common/static/region.js
    } finally {
      swapping = false;
    }
  };

  // Show the newest document: its part of the page first if that changed, then its figures.
  const sync = async () => {
    if (swapping || !doc) return;
    if (!sameShape()) {
      try {
        await swapIn();
      } catch (error) {
        setTimeout(sync, 1000);  // the page could not be read: try again shortly
        return;
      }
      if (!sameShape()) {
        sync();  // changed again meanwhile
        return;
      }
      figures.now();
      return;
    }
    figures.soon();
  };

  const applyCounts = (counts) => {
    if (!doc) return;
    const total = counts.total;
    const figures = counts.votes || doc.options.map(() => null);
    doc = {
      ...doc, total, version: counts.version,
      options: doc.options.map((option, index) => {
        const n = figures[index];
        return { ...option, votes: n,
                 percent: n === null ? null : (total ? Math.round(1000 * n / total) / 10 : 0) };
      }),
      pipeline: { ...doc.pipeline, last_batch_at_ms: counts.last_batch_at_ms },
    };
  };

  let shownVersion = null;
  const received = (next) => {
    doc = next;
    showStatus();
    if (shownVersion !== null && doc.version !== shownVersion) announceResults();
    shownVersion = doc.version;
    sync();
  };

  // --- The stream -------------------------------------------------------------------------
  setInterval(showAges, AGES_EVERY_MS);
  for (const fill of document.querySelectorAll(".fill")) {
    fill.style.width = `${Math.min(100, Math.max(0, Number(fill.dataset.percent) || 0))}%`;
  }
  if (!window.EventSource || !window.swapPollRegion) {
    setText(connection, "Not live in this browser: reload the page for new figures");
    return;
  }

  let source = null;
  let failures = 0;
  let retryTimer = null;
  let lostTimer = null;
  let lostSaid = false;

  const setLink = (state) => {
    linkState = state;
    showStatus();
  };

  const live = () => {
    if (linkState !== "live") setLink("live");
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
      received(JSON.parse(event.data));
    };
    source.addEventListener("counts", (event) => {
      applyCounts(JSON.parse(event.data));
      received(doc);
    });
    source.onerror = () => {
      source.close();
      source = null;
      setLink("reconnecting");
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
  setLink("connecting");
  connect();
})();
