// Live progress of a run: while the run is live, fetch the changing part of the page and swap it in.
// Polls every few seconds while the tab is visible, rarely while it is hidden, and stops when the run is final.
// Without JavaScript the page shows the same part on reload (and refreshes itself, see run.html).
(function () {
  "use strict";
  var VISIBLE_DELAY = 2000;
  var HIDDEN_DELAY = 30000;
  var container = document.getElementById("run-live");
  if (!container) {
    return;
  }
  var timer = null;

  function isLive() {
    var body = container.querySelector(".run-body");
    return body !== null && body.getAttribute("data-live") === "true";
  }

  function openDetailIds() {
    var ids = [];
    container.querySelectorAll("details[open]").forEach(function (details) {
      ids.push(details.id);
    });
    return ids;
  }

  function swapIn(html) {
    var wasOpen = openDetailIds();
    container.innerHTML = html;
    wasOpen.forEach(function (id) {
      var details = id && document.getElementById(id);
      if (details) {
        details.open = true;
      }
    });
  }

  function schedule() {
    clearTimeout(timer);
    if (isLive()) {
      timer = setTimeout(poll, document.hidden ? HIDDEN_DELAY : VISIBLE_DELAY);
    }
  }

  function poll() {
    fetch(container.getAttribute("data-live-url"), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(swapIn)
      .catch(function () { /* a failed poll is retried at the next tick */ })
      .then(schedule);
  }

  // Coming back to the tab: look at once instead of waiting out the slow hidden-tab delay.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && isLive()) {
      clearTimeout(timer);
      poll();
    }
  });
  schedule();
})();
