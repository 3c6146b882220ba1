// The presenter's page: every action is a call to the admin API with the pasted token.
// The token and the polls created here are kept in sessionStorage, which is this tab's
// alone and is forgotten when the tab closes. Which poll is open is asked of GET /api/poll.
"use strict";
(() => {
  const main = document.getElementById("admin");
  if (!main || !window.fetch || !window.sessionStorage) return;
  const $ = (id) => document.getElementById(id);
  const base = main.dataset.base || "";
  const TOKEN_KEY = "vote-admin-token";
  const POLLS_KEY = "vote-admin-polls";
  const REFRESH_MS = 2000;
  const first = { poll: main.dataset.firstPoll, question: main.dataset.firstQuestion,
                  options: Number(main.dataset.firstOptions), results: "live" };
  let openId = null;

  const say = (text) => { $("admin-status").textContent = text; };
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  const known = () => {
    const stored = JSON.parse(sessionStorage.getItem(POLLS_KEY) || "[]");
    return [first, ...stored.filter((poll) => poll.poll !== first.poll)];
  };
  const remember = (poll) => {
    const stored = known().slice(1).filter((old) => old.poll !== poll.poll);
    sessionStorage.setItem(POLLS_KEY, JSON.stringify([...stored, poll]));
  };

  const showToken = () => {
    const set = token() !== "";
    $("token-state").textContent = set
      ? "A token is set for this tab; closing the tab forgets it."
      : "Kept in this browser tab only: closing the tab forgets it.";
    $("forget").hidden = !set;
  };

  // One call to the admin API; the answer's document, or an Error saying what to do.
  const call = async (path, body) => {
    if (!token()) throw new Error("paste the admin token first (step 1)");
    const response = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showToken();
      throw new Error("the token was refused: paste the right one");
    }
    if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
    return answer;
  };

  // Option ids from the labels (a-z 0-9 -, up to 32), unique within the poll.
  const optionIds = (labels) => {
    const used = new Set();
    return labels.map((label, index) => {
      let id = label.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
        .replace(/[^a-z0-9]+/g, "-").replace(/^-+/, "").slice(0, 32).replace(/-+$/, "");
      for (let n = index + 1; !id || used.has(id); n += 1) id = `option-${n}`;
      used.add(id);
      return { id, label };
    });
  };

  const button = (text, question, action) => {
    const element = document.createElement("button");
    element.type = "button";
    element.className = action;
    element.textContent = text;
    const which = document.createElement("span");
    which.className = "visually-hidden";
    which.textContent = ` \u201c${question}\u201d`;
    element.append(which);
    return element;
  };

  // Each poll's row is made once and then only updated, so the row under the keyboard's
  // focus is never replaced.
  const rows = new Map();
  const row = (poll) => {
    if (rows.has(poll.poll)) return rows.get(poll.poll);
    const item = document.createElement("li");
    item.className = "poll";
    item.dataset.poll = poll.poll;
    const question = document.createElement("span");
    question.className = "poll-question";
    question.textContent = poll.question;
    const about = document.createElement("span");
    about.className = "poll-about";
    const actions = document.createElement("span");
    actions.className = "poll-actions";
    const opener = button("Open", poll.question, "open");
    const closer = button("Close", poll.question, "close");
    opener.addEventListener("click", () => change(poll, "open", closer));
    closer.addEventListener("click", () => change(poll, "close", opener));
    actions.append(opener, closer);
    item.append(question, about, actions);
    $("polls").append(item);
    rows.set(poll.poll, { item, about, opener, closer });
    return rows.get(poll.poll);
  };

  const render = () => {
    for (const poll of known()) {
      const open = poll.poll === openId;
      const { item, about, opener, closer } = row(poll);
      item.dataset.open = String(open);
      about.textContent = `${open ? "Open now" : "Closed"} \u00b7 ${poll.options} options \u00b7 `
        + (poll.results === "after_close" ? "figures after closing" : "figures live");
      opener.disabled = open;
      closer.disabled = !open;
    }
    const shown = known().find((poll) => poll.poll === openId);
    $("open-now").textContent = shown ? `Open now: \u201c${shown.question}\u201d`
      : "No poll is open: the vote page says so.";
  };

  const refresh = async () => {
    try {
      const response = await fetch(`${base}/api/poll`, { cache: "no-store" });
      if (!response.ok) return;
      const open = await response.json();
      openId = open.open ? open.poll : null;
      if (open.open && !known().some((poll) => poll.poll === open.poll)) {
        remember({ poll: open.poll, question: open.question, options: open.options.length,
                   results: open.results });
      }
      render();
    } catch (error) {
      // vote_fn is unreachable for now: the next round asks again.
    }
  };

  // After an action its button is disabled: the focus moves to the one that undoes it.
  const change = async (poll, action, then) => {
    try {
      await call(`/api/admin/polls/${encodeURIComponent(poll.poll)}/${action}`);
      openId = action === "open" ? poll.poll : (openId === poll.poll ? null : openId);
      render();
      then.focus();
      say(`${action === "open" ? "Opened" : "Closed"}: \u201c${poll.question}\u201d.`);
    } catch (error) {
      say(`Not done: ${error.message}.`);
    }
  };

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    showToken();
    say("Token set for this tab.");
  });

  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showToken();
    say("Token forgotten.");
    $("token").focus();
  });

  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const labels = form.elements.options.value.split("\n").map((line) => line.trim())
      .filter((line) => line !== "");
    if (labels.length < 2 || labels.length > 10) {
      say(`Not created: write 2 to 10 options, one per line (there are ${labels.length}).`);
      form.elements.options.focus();
      return;
    }
    try {
      const created = await call("/api/admin/polls", {
        question: form.elements.question.value.trim(), options: optionIds(labels),
        results: form.elements.results.value,
      });
      remember({ poll: created.poll, question: created.question,
                 options: created.options.length, results: created.results });
      form.reset();
      render();
      say(`Created: \u201c${created.question}\u201d. Open it when the room is ready.`);
    } catch (error) {
      say(`Not created: ${error.message}.`);
    }
  });

  showToken();
  render();
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
