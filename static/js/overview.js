// Cluster overview: the heatmap of every accelerator (colour: utilisation; marks: health) and the
// tiles, kept current from the "cluster" topic (live.js delivers its messages here).
(function () {
  "use strict";
  var live = window.boomLive;
  var div = document.getElementById("heatmap");
  if (!live || !div || !live.config.heatmap) { return; }
  var map = live.config.heatmap;
  var S = live.config.strings;
  var HEALTH_COLOURS = {1: "#d99a00", 2: "#d0342c"};
  var pending = false;

  function drawHeatmap() {
    pending = false;
    if (!map.nodes.length) { return; }  // the page says "no accelerators" instead of empty axes
    var rows = map.nodes.length, cols = Math.max(map.columns, 1);
    var z = [], text = [];
    for (var r = 0; r < rows; r++) { z.push(new Array(cols).fill(null)); text.push(new Array(cols).fill("")); }
    var marks = {x: [], y: [], color: [], text: []};
    Object.keys(map.cells).forEach(function (id) {
      var c = map.cells[id];  // key "node/vendor/index": [row, column, utilisation, health code, name, id]
      if (c[0] >= rows || c[1] >= cols) { return; }
      var health = map.health_names[String(c[3])] || "?";
      z[c[0]][c[1]] = c[2];
      text[c[0]][c[1]] = map.nodes[c[0]].name + " · " + c[4] + "<br>" + S.utilization + ": " +
        (c[2] === null || c[2] === undefined ? "—" : Math.round(c[2]) + "%") + "<br>" + S.health + ": " + health;
      if (c[3] === 1 || c[3] === 2) {
        marks.x.push(c[1]); marks.y.push(map.nodes[c[0]].name); marks.color.push(HEALTH_COLOURS[c[3]]);
        marks.text.push(map.nodes[c[0]].name + " · " + c[4] + ": " + health);
      }
    });
    var names = map.nodes.map(function (n) { return n.name; });
    var data = [
      {type: "heatmap", z: z, x: Array.from({length: cols}, function (_, i) { return i; }), y: names,
       zmin: 0, zmax: 100, colorscale: [[0, "#eef3fb"], [0.5, "#7ea6e6"], [1, "#163d8c"]], text: text, hoverinfo: "text", xgap: 2, ygap: 2,
       colorbar: {title: {text: "%", side: "right"}, thickness: 10}},
      {type: "scatter", mode: "markers", x: marks.x, y: marks.y, text: marks.text, hoverinfo: "text",
       marker: {symbol: "x-thin-open", size: 12, line: {width: 3}, color: marks.color}, showlegend: false},
    ];
    var height = Math.min(Math.max(140, rows * 18 + 70), 2400);
    // Row names are "node" or "node · vendor" (a node with GPUs and NPUs): room for the longest.
    var longest = names.reduce(function (n, name) { return Math.max(n, name.length); }, 0);
    Plotly.react(div, data, {
      height: height, margin: {l: Math.min(280, Math.max(80, longest * 7 + 16)), r: 20, t: 10, b: 30},
      paper_bgcolor: "rgba(0,0,0,0)",
      xaxis: {dtick: 1, fixedrange: true, showticklabels: cols <= 32},
      yaxis: {autorange: "reversed", fixedrange: true, type: "category"},
    }, {displaylogo: false, responsive: true});
    div.setAttribute("data-cells", String(Object.keys(map.cells).length));
  }

  function setTile(key, value) {
    document.querySelectorAll('[data-total="' + key + '"]').forEach(function (el) { el.textContent = value; });
  }

  function updateTiles(totals) {
    var nodes = totals.nodes || {}, accelerators = totals.accelerators || {};
    var all = 0, count = 0;
    Object.keys(nodes).forEach(function (k) { all += nodes[k]; });
    Object.keys(accelerators).forEach(function (k) { count += accelerators[k]; });
    setTile("nodes", all);
    ["online", "degraded", "unreachable"].forEach(function (k) { setTile("nodes." + k, nodes[k] || 0); });
    setTile("accelerators", count);
    setTile("accelerators.unhealthy", (accelerators.warning || 0) + (accelerators.critical || 0));
  }

  // The tile is the current rate whatever the range: the newest raw sample of each job (from the page,
  // then from the stream), not the charts' last points (a 24 h chart ends in buckets of minutes).
  var TILE_WINDOW_MS = 120000;
  var latestByJob = {};  // job id -> [time ms, tokens/s]
  Object.keys(live.config.throughput_jobs || {}).forEach(function (job) {
    latestByJob[job] = live.config.throughput_jobs[job];
  });

  function updateThroughput() {
    var cutoff = Date.now() - TILE_WINDOW_MS, sum = 0;
    Object.keys(latestByJob).forEach(function (job) {
      var point = latestByJob[job];
      if (point[0] >= cutoff && point[1] !== null) { sum += point[1]; }
    });
    setTile("throughput", sum.toFixed(1));
  }

  function followThroughput(data) {
    live.seriesOf(data).forEach(function (item) {
      if (item.series !== "job.output_tokens_per_s" || !item.points.length) { return; }
      var last = item.points[item.points.length - 1], job = String(item.labels.job);
      var t = Math.round(last[0] * 1000);
      if (!latestByJob[job] || latestByJob[job][0] <= t) { latestByJob[job] = [t, last[1]]; }
    });
  }

  live.on(function (message) {
    if (message.topic !== "cluster") { return; }
    var st = message.data.state || {};
    Object.keys(st.accelerators || {}).forEach(function (id) {
      var cell = map.cells[map.ids[id]], update = st.accelerators[id];  // [node id, utilisation, health, t in ms]
      if (!cell) { return; }  // an accelerator new since the page was drawn: shown after a reload
      cell[2] = update[1];
      cell[3] = update[2];
    });
    if (st.totals) { updateTiles(st.totals); }
    followThroughput(message.data);
    updateThroughput();
    if (!pending) { pending = true; window.requestAnimationFrame(drawHeatmap); }
  });
  drawHeatmap();
  setInterval(updateThroughput, 5000);  // a job that stopped sending leaves the sum
}());
