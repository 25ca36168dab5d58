// Draws the dashboard's plotly figures. Each chart div names, in data-figure, the id of a JSON script
// element holding a figure built on the server; the filter form swaps the panels in with htmx, so new
// charts are drawn after every swap too. No inline scripts: the page may carry a strict CSP.
(function () {
  "use strict";

  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  function draw(root) {
    if (typeof Plotly === "undefined") {
      return;
    }
    root.querySelectorAll("[data-figure]").forEach(function (div) {
      var source = document.getElementById(div.dataset.figure);
      if (!source || div.dataset.drawn === "1") {
        return;
      }
      var figure = JSON.parse(source.textContent);
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
