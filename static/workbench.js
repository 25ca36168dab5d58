/* Labeling workbench: keyboard shortcuts and the work timer. A static file, because the pages' CSP
   allows no inline script. Everything is bound once on the document, so panels swapped in by htmx need
   no re-binding; per-panel state (the timer) starts on htmx:load. */
(function () {
  "use strict";

  var timer = null;

  function panel() {
    return document.querySelector("[data-work-panel]");
  }

  function typingTarget(el) {
    if (!el) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    var type = (el.getAttribute("type") || "text").toLowerCase();
    return ["checkbox", "radio", "button", "submit", "reset", "file", "range", "color"].indexOf(type) === -1;
  }

  function formatElapsed(ms) {
    var s = Math.floor(ms / 1000);
    var m = Math.floor(s / 60);
    s = s % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  // The time spent on the item shown: measured with the page's monotonic clock from when the panel
  // appeared (the server also bounds it by its own clock from the signed start it rendered).
  // A panel shown again with errors carries the same signed start as before: the clock goes on.
  function startTimer(root) {
    var previous = timer;
    if (timer) window.clearInterval(timer.interval);
    timer = null;
    var form = root.querySelector("[data-timed-form]");
    if (!form) return;
    var token = form.querySelector("input[name=started]");
    token = token ? token.value : "";
    var start = previous && token && previous.token === token ? previous.start : performance.now();
    var display = root.querySelector("[data-timer-display]");
    var tick = function () {
      var elapsed = Math.round(performance.now() - start);
      root.querySelectorAll("input[name=time_spent_ms]").forEach(function (input) {
        input.value = String(elapsed);
      });
      if (display) display.textContent = formatElapsed(elapsed);
    };
    tick();
    timer = { interval: window.setInterval(tick, 1000), tick: tick, token: token, start: start };
  }

  // The control a field error belongs to: the one marked invalid in the error's field, else its checked
  // choice, else its first input.
  function invalidControl(work) {
    var error = work.querySelector(".field-error");
    var box = error && error.closest(".field, fieldset");
    if (!box) return null;
    return box.querySelector("[aria-invalid=true]") || box.querySelector("input:checked") ||
      box.querySelector("textarea, select, input:not([type=hidden])");
  }

  function onPanel(root) {
    var work = root.matches && root.matches("[data-work-panel]") ? root : root.querySelector && root.querySelector("[data-work-panel]");
    if (!work) return;
    startTimer(work);
    // Keep keyboard users in the flow: focus the new item's heading so hotkeys apply to it at once, or,
    // when the panel came back with errors, the first field to correct (Ctrl+Enter then submits again).
    var control = invalidControl(work);
    if (control) {
      var details = control.closest("details");
      if (details) details.open = true;
      control.focus();
      return;
    }
    var heading = work.querySelector("[data-panel-focus]");
    if (heading) heading.focus({ preventScroll: true });
  }

  document.addEventListener("htmx:load", function (evt) {
    onPanel(evt.target);
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.htmx) onPanel(document);
  });

  // Fresh time figures at the moment of submitting, whichever way the form is sent.
  document.addEventListener("submit", function () {
    if (timer) timer.tick();
  }, true);
  document.addEventListener("htmx:configRequest", function (evt) {
    if (!timer) return;
    timer.tick();
    var form = evt.target.closest ? evt.target.closest("form") : null;
    var input = form ? form.querySelector("input[name=time_spent_ms]") : null;
    if (input) evt.detail.parameters.time_spent_ms = input.value;
  });

  // Errors of htmx requests other than a form's own 400/409 (which the htmx-config in _htmx_config.html swaps
  // in: the panel again, messages by the fields). A 403, 404 or 5xx is not swapped, so the form keeps what was
  // typed; the message goes into the page, next to the form that was sent (else at the top of the page).
  // Said here rather than by the server (HX-Retarget/HX-Reswap headers) because not every error comes from a
  // view of ours: a proxy's 502, a dropped connection, Django's DEBUG 500 page carry no such header.
  var GENERIC_ERRORS = {
    0: "The server could not be reached. Check the connection and try again.",
    403: "This was refused. Reload the page and try again.",
    404: "This is no longer here. Reload the page to see what is.",
    500: "The server failed to answer this request. Try again in a moment."
  };

  function errorMessage(xhr) {
    var status = xhr ? xhr.status : 0;
    // The workbench's error pages send their sentence in a header too (workbench/errors.py); the page itself is
    // not parsed: a parsed document applies the page's CSP, and Django's DEBUG pages are full of inline style.
    var header = xhr ? xhr.getResponseHeader("X-Error-Message") : null;
    if (header) {
      try {
        var message = JSON.parse(header);
        if (typeof message === "string" && message) return message;
      } catch (e) { /* fall through to the generic sentence */ }
    }
    if (status >= 500) return GENERIC_ERRORS[500] + " (Error " + status + ".)";
    return (GENERIC_ERRORS[status] || "The request was refused.") + (status ? " (Error " + status + ".)" : "");
  }

  function errorHost(elt) {
    var form = elt && elt.closest ? elt.closest("form") : null;
    return form || document.getElementById("main") || document.body;
  }

  function clearRequestError(host) {
    var old = host && host.querySelector(":scope > [data-request-error]");
    if (old) old.remove();
  }

  function showRequestError(elt, xhr) {
    var host = errorHost(elt);
    clearRequestError(host);
    var notice = document.createElement("p");
    notice.className = "notice bad request-error";
    notice.setAttribute("role", "alert");
    notice.setAttribute("data-request-error", "");
    notice.textContent = errorMessage(xhr);
    if (host.tagName === "FORM") host.appendChild(notice);
    else host.insertBefore(notice, host.firstChild);
  }

  document.addEventListener("htmx:responseError", function (evt) {
    showRequestError(evt.detail.elt, evt.detail.xhr);
  });
  document.addEventListener("htmx:sendError", function (evt) {
    showRequestError(evt.detail.elt, null);
  });
  document.addEventListener("htmx:beforeRequest", function (evt) {
    clearRequestError(errorHost(evt.detail.elt));
  });

  function submitForm(form) {
    if (!form) return;
    if (typeof form.requestSubmit === "function") form.requestSubmit();
    else form.submit();
  }

  function selectChoice(work, key) {
    var input = work.querySelector("input[data-hotkey='" + key + "']:not([disabled])");
    if (!input) return false;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    input.focus();
    return true;
  }

  // A review: picking a label other than the current final label means "override".
  document.addEventListener("change", function (evt) {
    var input = evt.target;
    if (!input.matches || !input.matches("[data-review-label]")) return;
    var form = input.form;
    var current = form.getAttribute("data-current-label");
    var verdict = form.querySelector("input[name=verdict][value=" + (input.value === current ? "agree" : "override") + "]");
    if (verdict) verdict.checked = true;
  });

  document.addEventListener("keydown", function (evt) {
    var work = panel();
    if (!work) return;
    // Ctrl+Enter (Cmd+Enter on a Mac) submits the item from anywhere, the rationale box included; from the
    // decline form's reason (where a refused decline puts the cursor), the decline.
    if (evt.key === "Enter" && (evt.ctrlKey || evt.metaKey)) {
      var own = evt.target && evt.target.form;
      var form = own && work.contains(own) ? own : work.querySelector("form[data-submit-shortcut]");
      if (form) {
        evt.preventDefault();
        submitForm(form);
      }
      return;
    }
    if (evt.ctrlKey || evt.metaKey || evt.altKey || typingTarget(evt.target)) return;
    if (/^[0-9]$/.test(evt.key)) {
      if (selectChoice(work, evt.key)) evt.preventDefault();
    }
  });
})();
