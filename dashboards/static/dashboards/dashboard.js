// Draws the dashboard's plotly figures. Each chart div carries, in data-figure, a figure built on the
// server as JSON (its data and its own layout; what every chart shares is BASE_LAYOUT below); the filter
// form swaps the panels in with htmx, so new charts are drawn after every swap too. No inline scripts and
// no inline styles: the page carries a strict CSP.
(function () {
  "use strict";

  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  var AXIS = { gridcolor: "#e9edf3", zerolinecolor: "#cfd6e1", linecolor: "#cfd6e1", automargin: true };
  var BASE_LAYOUT = {
    // An explicit empty template: plotly's default one would restyle every chart.
    template: {},
    title: { x: 0.01, xanchor: "left", font: { size: 15 } },
    margin: { l: 60, r: 20, t: 48, b: 48 },
    height: 320,
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1d2430" },
    legend: { orientation: "h", y: -0.2, yanchor: "top" },
    colorway: ["#2457c5", "#e07b00", "#1b7f3b", "#b3261e", "#6b4fbb", "#00838f", "#8d6e63", "#c2185b"],
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    hoverlabel: { bgcolor: "#ffffff" },
    xaxis: AXIS,
    yaxis: AXIS
  };

  function merge(base, own) {
    var out = {};
    Object.keys(base).forEach(function (key) { out[key] = base[key]; });
    Object.keys(own || {}).forEach(function (key) {
      var a = base[key], b = own[key];
      out[key] = (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b))
        ? merge(a, b) : b;
    });
    return out;
  }

  function draw(root) {
    if (typeof Plotly === "undefined") {
      return;
    }
    root.querySelectorAll("[data-figure]").forEach(function (div) {
      if (div.dataset.drawn === "1") {
        return;
      }
      var figure = JSON.parse(div.dataset.figure);
      var layout = merge(BASE_LAYOUT, figure.layout);
      Plotly.newPlot(div, figure.data || [], layout, config).then(function () {
        div.dataset.drawn = "1";
        // A point about items carries the item search's address: a click opens those items.
        div.on("plotly_click", function (event) {
          var url = event.points && event.points[0] && event.points[0].customdata;
          if (typeof url === "string" && url.charAt(0) === "/") {
            window.location.assign(url);
          }
        });
      });
    });
  }

  // htmx keeps a copy of the panels for the back button and puts it back as HTML: plotly's drawn charts
  // carry style attributes, which the CSP refuses when parsed. So the copy holds the undrawn figures, and
  // they are drawn again when it comes back.
  function undraw(root) {
    if (typeof Plotly === "undefined") {
      return;
    }
    root.querySelectorAll("[data-drawn='1']").forEach(function (div) {
      Plotly.purge(div);
      div.removeAttribute("data-drawn");
      div.removeAttribute("style");
      div.replaceChildren();
    });
    // plotly's hidden text-measuring <svg>, which it adds to <body> (htmx keeps the whole body) and makes
    // again when it next draws.
    var tester = document.getElementById("js-plotly-tester");
    if (tester) {
      tester.remove();
    }
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
  document.addEventListener("htmx:beforeHistorySave", function (event) { undraw(event.detail.historyElt || document); });
  document.addEventListener("htmx:historyRestore", function () { draw(document); });
  window.addEventListener("beforeprint", resizeAll);
})();
