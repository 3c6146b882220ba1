// Progressive enhancement: vote without a page reload; the plain form works without it.
"use strict";
(() => {
  const form = document.getElementById("vote-form");
  const status = document.getElementById("status");
  if (!form || !window.fetch) return;
  form.addEventListener("submit", async (event) => {
    const button = event.submitter;
    if (!button || !button.value) return;
    event.preventDefault();
    status.textContent = "Sending your vote\u2026";
    try {
      const response = await fetch("/api/vote", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ vote: button.value }),
        credentials: "same-origin",
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || response.statusText);
      for (const other of form.querySelectorAll("button.option")) {
        const chosen = other === button;
        other.classList.toggle("chosen", chosen);
        other.setAttribute("aria-pressed", chosen ? "true" : "false");
      }
      status.textContent = "";
      status.append("You voted for ");
      const strong = document.createElement("strong");
      strong.textContent = button.textContent.trim();
      status.append(strong, ". You can change your vote at any time.");
    } catch (error) {
      status.textContent = "Your vote was not recorded: " + error.message;
    }
  });
})();
