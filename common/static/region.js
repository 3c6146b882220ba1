// The poll's part of a page (#poll-region): when the poll shown changes, the page asks the
// server for itself again and swaps that part in, so the server's template stays the one
// place its markup is written. The vote page and the results pages use it (vote.js,
// results.js); each function serves this file beside its own.
"use strict";
window.swapPollRegion = async () => {
  const response = await fetch(window.location.pathname, { cache: "no-store",
                                                           credentials: "same-origin" });
  if (!response.ok) throw new Error(`the page answered ${response.status}`);
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  const incoming = fresh.getElementById("poll-region");
  if (!incoming) throw new Error("the page has no poll");
  document.getElementById("poll-region").replaceWith(document.importNode(incoming, true));
  document.title = fresh.title;
};
