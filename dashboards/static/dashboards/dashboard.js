// Draws the dashboard's plotly figures. Each chart div carries, in data-figure, a figure built on the
// server as JSON; the filter form swaps the panels in with htmx, so new charts are drawn after every swap
// too. No inline scripts: the page carries a strict CSP.
(function () {
  "use strict";

  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  function draw(root) {
    if (typeof Plotly === "undefined") {
      return;
    }
    root.querySelectorAll("[data-figure]").forEach(function (div) {
      if (div.dataset.drawn === "1") {
        return;
      }
      var figure = JSON.parse(div.dataset.figure);
      Plotly.newPlot(div, figure.data || [], figure.layout || {}, config).then(function () {
        div.dataset.drawn = "1";
      });
    });
  }

  // Plotly cannot size a chart inside a closed <details> or a hidden tab; redraw when shown.
  function resizeAll() {
    document.querySelectorAll("[data-drawn='1']").forEach(function (div) {
      Plotly.Plots.resize(div);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { draw(document); });
  } else {
    draw(document);
  }
  document.addEventListener("htmx:afterSwap", function (event) { draw(event.target); });
  window.addEventListener("beforeprint", resizeAll);
})();
