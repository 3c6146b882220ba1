// Live results over Server-Sent Events; the browser reconnects by itself with Last-Event-ID.
"use strict";
(() => {
  const connection = document.getElementById("connection");
  const total = document.getElementById("total");
  const announce = document.getElementById("announce");
  let lastAnnounced = 0;

  const setBars = () => {
    for (const fill of document.querySelectorAll(".fill")) {
      fill.style.width = fill.dataset.percent + "%";
    }
  };

  const setState = (state, text) => {
    connection.dataset.state = state;
    connection.textContent = text;
  };

  const render = (results) => {
    for (const option of results.options) {
      const row = document.querySelector(`li[data-option="${CSS.escape(option.id)}"]`);
      if (!row) continue;
      row.querySelector(".votes").textContent = option.votes;
      row.querySelector(".percent").textContent = option.percent + "%";
      row.querySelector(".fill").dataset.percent = option.percent;
    }
    setBars();
    total.textContent = results.total ? `${results.total} votes` : "No votes yet";
    const now = Date.now();
    if (now - lastAnnounced > 10000) {  // polite, not every tick
      lastAnnounced = now;
      announce.textContent = results.options.map((o) => `${o.label} ${o.percent}%`).join(", ");
    }
  };

  setBars();
  if (!window.EventSource) {
    setState("reconnecting", "Live updates need a newer browser: reload to refresh.");
    return;
  }
  const source = new EventSource("/stream");
  source.onopen = () => setState("live", "Live");
  source.onerror = () => setState("reconnecting", "Reconnecting\u2026");
  source.onmessage = (event) => {
    setState("live", "Live");
    render(JSON.parse(event.data));
  };
})();
