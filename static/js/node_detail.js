// Node page: the accelerators table follows the collector's samples (the node's topic carries frames
// of accelerator.<field>), between the probes that re-render it; the newest value of each cell is kept
// and put back after live_regions.js replaced the table.
(function () {
  "use strict";
  var live = window.boomLive;
  if (!live) { return; }
  var latest = {};  // accelerator id -> field -> [t, value]
  var FORMAT = {
    utilization_percent: function (v) { return Math.round(v) + "%"; },
    temperature_c: function (v) { return Math.round(v) + " °C"; },
    power_w: function (v) { return v.toFixed(1) + " W"; },
  };

  function apply() {
    Object.keys(latest).forEach(function (id) {
      Object.keys(latest[id]).forEach(function (field) {
        var cell = document.querySelector('#accelerators [data-acc="' + id + '"][data-field="' + field + '"]');
        if (!cell) { return; }
        var value = latest[id][field][1];
        var text = cell.querySelector("[data-value]");
        (text || cell).textContent = FORMAT[field](value);
        var bar = cell.querySelector(".bar span");
        if (bar) { bar.style.width = Math.max(0, Math.min(100, value)) + "%"; }
      });
    });
  }

  live.on(function (message) {
    var changed = false;
    live.seriesOf(message.data).forEach(function (item) {
      var field = item.series.indexOf("accelerator.") === 0 ? item.series.slice(12) : null;
      if (!field || !FORMAT[field] || item.labels.accelerator === undefined || !item.points.length) { return; }
      var id = String(item.labels.accelerator), point = item.points[item.points.length - 1];
      latest[id] = latest[id] || {};
      if (!latest[id][field] || latest[id][field][0] <= point[0]) { latest[id][field] = point; changed = true; }
    });
    if (changed) { apply(); }
  });
  document.addEventListener("live-regions", apply);
}());
