// The run page: live status while the run works, copy buttons on snippets, and "print with evidence".
// While the run is live the page polls a small status (answered 304 while nothing changed), updates
// the status line in place, announces changes through an aria-live region, and loads the report's
// body again only when the run's state changes, so a selection or an open <details> is left alone.
// Without JavaScript the page refreshes itself instead (see run.html).
(function () {
  "use strict";
  var HIDDEN_DELAY = 30000;
  var COUNTDOWN_EVERY = 15000;

  function revealButtons(root) {
    root.querySelectorAll("button.copy[hidden], button.print-evidence[hidden]").forEach(function (button) {
      button.hidden = false;
    });
  }

  // The clipboard API where the browser allows it; else select the snippet and copy the selection.
  function copySnippet(button) {
    var code = button.closest(".snippet").querySelector("code");
    var done = function () {  // "Copied" until the reader moves on
      button.textContent = "Copied";
      button.addEventListener("blur", function () { button.textContent = "Copy"; }, { once: true });
    };
    var copySelection = function () {
      var range = document.createRange();
      range.selectNodeContents(code);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      if (document.execCommand("copy")) {
        done();
      }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(code.textContent).then(done, copySelection);
    } else {
      copySelection();
    }
  }

  function printWithEvidence() {
    var closed = Array.prototype.slice.call(document.querySelectorAll("#evidence details:not([open])"));
    closed.forEach(function (details) { details.open = true; });
    window.addEventListener("afterprint", function restore() {
      closed.forEach(function (details) { details.open = false; });
      window.removeEventListener("afterprint", restore);
    });
    window.print();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy, button.print-evidence");
    if (button && button.classList.contains("copy")) {
      copySnippet(button);
    } else if (button) {
      printWithEvidence();
    }
  });
  revealButtons(document);

  var container = document.getElementById("run-live");
  if (!container) {
    return;
  }
  var announcer = document.getElementById("run-announcer");
  var pollDelay = parseInt(container.getAttribute("data-poll-ms"), 10) || 2000;
  var etag = null;
  var timer = null;

  function body() {
    return container.querySelector(".run-body");
  }

  function isLive() {
    return body() !== null && body().getAttribute("data-live") === "true";
  }

  function announce(text) {
    if (announcer && text && announcer.textContent !== text) {
      announcer.textContent = text;
    }
  }

  function setText(selector, text) {
    var element = body().querySelector(selector);
    if (element && element.textContent !== text) {
      element.textContent = text;
      return true;
    }
    return false;
  }

  function countDown() {
    var until = body() && body().querySelector("time.waiting-until");
    if (until) {
      var left = Math.max(0, Math.ceil((Date.parse(until.getAttribute("datetime")) - Date.now()) / 60000));
      setText(".minutes-left", left + " min");
    }
  }

  function showProgress(state) {
    var hosts = state.hosts + " host" + (state.hosts === 1 ? "" : "s");
    if (setText(".hosts-so-far", hosts)) {
      announce(state.status + ": " + hosts + " started so far.");
    }
  }

  function openDetailIds() {
    return Array.prototype.map.call(container.querySelectorAll("details[open]"), function (details) {
      return details.id;
    });
  }

  // The run moved on: the report's body once, then the messages of the state that is over go.
  function reloadBody(state) {
    return fetch(container.getAttribute("data-live-url"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var wasOpen = openDetailIds();
        body().outerHTML = html;
        wasOpen.forEach(function (id) {
          var details = id && document.getElementById(id);
          if (details) {
            details.open = true;
          }
        });
        document.querySelectorAll(".messages").forEach(function (messages) { messages.remove(); });
        revealButtons(container);
        var verdict = body().querySelector(".verdict-banner h2");
        announce(state.status + (verdict ? ". Verdict: " + verdict.textContent + "." : "."));
      });
  }

  function apply(state) {
    if (state.version !== body().getAttribute("data-version")) {
      return reloadBody(state);
    }
    showProgress(state);
  }

  function schedule() {
    clearTimeout(timer);
    if (isLive()) {
      timer = setTimeout(poll, document.hidden ? HIDDEN_DELAY : pollDelay);
    }
  }

  // The ETag is kept only once the page shows its state: a body that failed to load is asked for again.
  function poll() {
    var headers = etag ? { "If-None-Match": etag } : {};
    var received = null;
    fetch(container.getAttribute("data-status-url"), { credentials: "same-origin", cache: "no-store", headers: headers })
      .then(function (response) {
        if (response.status === 304) {
          return null;
        }
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        received = response.headers.get("ETag");
        return response.json();
      })
      .then(function (state) {
        return state && apply(state);
      })
      .then(function () {
        etag = received || etag;
      })
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
  setInterval(countDown, COUNTDOWN_EVERY);
  schedule();
})();
