// Benchmark pages: draw the figures the server embedded in #benchmark-figures with plotly.js, and,
// while a run is queued or running, poll its API object every second for progress. When a level
// finishes or the status changes the page reloads, so the table and charts come from the server.
(function () {
  var holder = document.getElementById("benchmark-figures");
  var figures = holder ? JSON.parse(holder.textContent) : [];
  document.querySelectorAll("[data-figure]").forEach(function (div) {
    var figure = figures[Number(div.getAttribute("data-figure"))];
    if (figure && window.Plotly) {
      window.Plotly.newPlot(div, figure.data, figure.layout, {responsive: true, displaylogo: false});
    }
  });

  var live = document.getElementById("benchmark-live");
  var url = live && live.getAttribute("data-poll-url");
  if (!url) { return; }
  var status = live.getAttribute("data-status");
  var levels = Number(live.getAttribute("data-levels"));
  var failures = 0;
  function poll() {
    fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (run) {
        failures = 0;
        var percent = Math.round(run.progress * 100);
        var bar = document.getElementById("bench-progress");
        if (bar) { bar.style.width = percent + "%"; }
        var text = document.getElementById("bench-percent");
        if (text) { text.textContent = percent + "%"; }
        var level = document.getElementById("bench-level");
        if (level && run.current_concurrency) {
          level.textContent = live.getAttribute("data-text-level") + " " + run.current_concurrency;
        }
        if (run.status !== status || run.results.length !== levels) { window.location.reload(); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { failures += 1; window.setTimeout(poll, Math.min(30000, 1000 * Math.pow(2, failures))); });
  }
  window.setTimeout(poll, 1000);
})();
