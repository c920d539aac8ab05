// Benchmark pages: draw the figures the server embedded in #benchmark-figures with plotly.js. A run's
// page follows the run on its stream topic (benchmark:<id>): live_regions.js re-reads its status,
// progress, results, history and the figures' data as the run writes them; the charts are drawn again
// here when a re-read brought new figures (a level finished). No polling and no reload.
(function () {
  var drawn = null;
  function draw() {
    var holder = document.getElementById("benchmark-figures");
    if (!holder || holder.textContent === drawn) { return; }
    var first = drawn === null;
    drawn = holder.textContent;
    var figures = JSON.parse(drawn);
    document.querySelectorAll("[data-figure]").forEach(function (div) {
      var figure = figures[Number(div.getAttribute("data-figure"))];
      if (!figure || !window.Plotly) { return; }
      var config = {responsive: true, displaylogo: false};
      if (first) { window.Plotly.newPlot(div, figure.data, figure.layout, config); }
      else { window.Plotly.react(div, figure.data, figure.layout, config); }
      div.setAttribute("data-draws", String(Number(div.getAttribute("data-draws") || 0) + 1));
    });
  }
  draw();
  document.addEventListener("live-regions", draw);
})();
