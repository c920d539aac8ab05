// Live charts (every page with charts). Draws the figures the server embedded in #live-config with
// plotly.js, follows the /ws/stream/ websocket, reloads from the series API when the range changes,
// and says when the data is stale because the stream dropped. After a reconnect it resubscribes
// with the last cursor the server sent, so the server first sends what was missed; points are kept
// in time order and a point already drawn is never drawn twice.
//
// Page scripts hook in through window.boomLive.on(function (message) {...}); live_regions.js re-reads
// the page's live regions when the stream says that what they show changed. A page without charts
// (a list) has the stream without plotly.js.
//
// Times: the server renders every timestamp in the user's time zone (<body data-tz>, chosen in the user
// menu, the browser's by default); the charts use the same zone. plotly.js shows millisecond x values as
// the browser's wall time, so the points are shifted when drawn (trace.x stays epoch milliseconds).
(function () {
  "use strict";
  var holder = document.getElementById("live-config");
  if (!holder) { return; }
  var Plotly = window.Plotly;
  var config = JSON.parse(holder.textContent);
  var TZ = document.body.getAttribute("data-tz") || "UTC";
  var LANG = document.documentElement.getAttribute("lang") || "en";
  var S = config.strings;
  var RECONNECT_MS = [1000, 2000, 5000, 10000];
  var state = {
    cursor: config.cursor, range: config.range, socket: null, open: false, attempts: 0,
    reconnectDelayMs: null, lastMessage: 0, messages: 0, reloadTimer: null, step: 0,
  };
  var charts = {};
  var hooks = [];
  var drawPending = false;

  function rangeOf(key) {
    for (var i = 0; i < config.ranges.length; i++) { if (config.ranges[i].key === key) { return config.ranges[i]; } }
    return config.ranges[0];
  }

  function labelsMatch(wanted, labels) {
    for (var key in wanted) {
      if (Object.prototype.hasOwnProperty.call(wanted, key) && labels[key] !== wanted[key]) { return false; }
    }
    return true;
  }

  function findTrace(chart, series, labels) {
    for (var i = 0; i < chart.traces.length; i++) {
      var trace = chart.traces[i];
      if (trace.series === series && labelsMatch(trace.labels, labels)) { return trace; }
    }
    if (!chart.spec.dynamic) { return null; }
    var wanted = chart.spec.queries.some(function (q) { return q.series === series && labelsMatch(q.filter, labels); });
    if (!wanted || labels[chart.spec.name_label] === undefined) { return null; }
    var id = labels[chart.spec.name_label];
    var known = chart.spec.names[String(id)];
    // An entity the page did not know when drawn (an accelerator found since): re-read the page's names.
    if (!known && window.boomLive && window.boomLive.refreshRegions) { window.boomLive.refreshRegions(); }
    var trace = {series: series, labels: {}, name: known || String(id), x: [], y: []};
    trace.labels[chart.spec.name_label] = id;
    chart.traces.push(trace);
    return trace;
  }

  // Insert points in time order; a time already present is skipped (a resumed stream may resend).
  function insertPoints(trace, points) {
    var added = 0;
    for (var i = 0; i < points.length; i++) {
      var x = Math.round(points[i][0] * 1000), y = points[i][1];
      var n = trace.x.length;
      if (n === 0 || x > trace.x[n - 1]) { trace.x.push(x); trace.y.push(y); added++; continue; }
      var lo = 0, hi = n;
      while (lo < hi) { var mid = (lo + hi) >> 1; if (trace.x[mid] < x) { lo = mid + 1; } else { hi = mid; } }
      if (trace.x[lo] === x) { continue; }
      trace.x.splice(lo, 0, x); trace.y.splice(lo, 0, y); added++;
    }
    return added;
  }

  function trim(chart) {
    var range = rangeOf(state.range);
    var from = Date.now() - range.seconds * 1000 - 5000;
    chart.traces.forEach(function (trace) {
      var cut = 0;
      while (cut < trace.x.length && trace.x[cut] < from) { cut++; }
      if (cut) { trace.x.splice(0, cut); trace.y.splice(0, cut); }
    });
  }

  function newest(chart) {
    var latest = 0;
    chart.traces.forEach(function (t) { if (t.x.length) { latest = Math.max(latest, t.x[t.x.length - 1]); } });
    return latest;
  }

  // -- time zone: the offset of TZ at a moment (cached per hour), and times formatted in TZ

  var offsets = {}, partsFormat = null, clockFormat = null;
  function zoneFormat(options) {
    try { return new Intl.DateTimeFormat("en-US", Object.assign({timeZone: TZ}, options)); } catch (e) {
      return new Intl.DateTimeFormat("en-US", Object.assign({timeZone: "UTC"}, options));
    }
  }
  function zoneOffsetMs(ms) {
    var hour = Math.floor(ms / 3600000);
    if (offsets[hour] === undefined) {
      partsFormat = partsFormat || zoneFormat({hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
                                               hour: "2-digit", minute: "2-digit", second: "2-digit"});
      var p = {};
      partsFormat.formatToParts(new Date(hour * 3600000)).forEach(function (x) { p[x.type] = x.value; });
      offsets[hour] = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute, +p.second) - hour * 3600000;
    }
    return offsets[hour];
  }
  // plotly.js shows a millisecond x as the browser's wall time: move it by the difference between the
  // chosen zone's offset and the browser's, so the axis reads the chosen zone's wall time.
  function shifted(xs) {
    return xs.map(function (x) { return x + zoneOffsetMs(x) + new Date(x).getTimezoneOffset() * 60000; });
  }
  function clock(ms) {
    if (!clockFormat) {
      try {
        clockFormat = new Intl.DateTimeFormat(LANG, {timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit",
                                                     hourCycle: "h23"});
      } catch (e) { clockFormat = zoneFormat({hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"}); }
    }
    return clockFormat.format(new Date(ms));
  }

  function full(ms) {
    partsFormat = partsFormat || zoneFormat({hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
                                             hour: "2-digit", minute: "2-digit", second: "2-digit"});
    var p = {};
    partsFormat.formatToParts(new Date(ms)).forEach(function (x) { p[x.type] = x.value; });
    return p.year + "-" + p.month + "-" + p.day + " " + (+p.hour % 24 < 10 ? "0" : "") + (+p.hour % 24) + ":" +
      p.minute + ":" + p.second + " (" + TZ + ")";
  }

  // "updated 20:18:03": the moment the page last received something (points, or a re-read of its regions).
  function markUpdated(ms) {
    state.updatedAt = ms || Date.now();
    var el = document.getElementById("live-updated");
    if (!el) { return; }
    el.hidden = false;
    el.textContent = S.updated + " " + clock(state.updatedAt);
    el.setAttribute("data-updated-at", String(state.updatedAt));
    el.setAttribute("title", full(state.updatedAt));
  }

  function layout(chart) {
    var range = rangeOf(state.range), now = Date.now();
    var empty = chart.traces.every(function (t) { return t.x.length === 0; });
    var title = chart.spec.title;
    var latest = newest(chart);
    if (!empty && state.open && rangeOf(state.range).live && now - latest > config.stale_after_s * 1000) {
      title += " · " + S.no_new_data.replace("%(s)s", Math.round((now - latest) / 1000));
    }
    return {
      title: {text: title, font: {size: 13}, x: 0.01, y: 0.97}, height: 270, margin: {l: 56, r: 12, t: 48, b: 48},
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
      xaxis: {type: "date", range: shifted([now - range.seconds * 1000, now]), gridcolor: "#eef0f4",
              title: {text: config.zone_label || TZ, font: {size: 10, color: "#6b7385"}, standoff: 4},
              hoverformat: "%Y-%m-%d %H:%M:%S",
              tickformatstops: [{dtickrange: [null, 60000], value: "%H:%M:%S"},
                                {dtickrange: [60000, 86400000], value: "%H:%M"},
                                {dtickrange: [86400000, null], value: "%m-%d"}]},
      yaxis: {title: {text: chart.spec.unit, font: {size: 11}}, rangemode: "tozero", gridcolor: "#eef0f4",
              range: chart.spec.y_max ? [0, chart.spec.y_max] : undefined, autorange: chart.spec.y_max ? false : true},
      showlegend: chart.traces.length > 1,
      legend: chart.traces.length > 4 ? {orientation: "v", x: 1.01, y: 1, font: {size: 10}, tracegroupgap: 0}
                                      : {orientation: "h", x: 0, y: 1.12, font: {size: 11}},
      annotations: empty ? [{text: S.no_data, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
                             font: {color: "#6b7385"}}] : [],
    };
  }

  function draw(chart) {
    if (!Plotly) { return; }
    var data = chart.traces.map(function (t) {
      return {x: shifted(t.x), y: t.y, name: t.name, type: "scatter", mode: t.x.length < 3 ? "lines+markers" : "lines",
              line: {width: 1.5}, hovertemplate: "%{y:.4~g} " + chart.spec.unit + "<extra>" + t.name + "</extra>"};
    });
    Plotly.react(chart.div, data, layout(chart), {displaylogo: false, responsive: true});
    chart.div.setAttribute("data-points", String(chart.traces.reduce(function (n, t) { return n + t.x.length; }, 0)));
  }

  function drawAll() {
    drawPending = false;
    Object.keys(charts).forEach(function (id) {
      var chart = charts[id];
      if (rangeOf(state.range).live) { trim(chart); }
      draw(chart);
    });
    freshness();
  }

  // The badge claims "live" only while the newest point is recent: a long range (reloaded each
  // minute, in buckets of state.step seconds) says so, and data older than that allows says it lags.
  function freshness() {
    if (!state.open) { return; }  // "stale" or "connecting": the socket's own state
    var range = rangeOf(state.range), latest = 0;
    Object.keys(charts).forEach(function (id) { latest = Math.max(latest, newest(charts[id])); });
    var allowedMs = config.stale_after_s * 1000 + (range.live ? 0 : (state.step + 60) * 1000);
    var lagMs = latest ? Date.now() - latest : 0;
    if (latest && lagMs > allowedMs) {
      setStatus("lagging", S.lagging.replace("%(s)s", Math.round(lagMs / 1000)));
    } else {
      setStatus(range.live ? "live" : "periodic");
    }
  }

  function scheduleDraw() {
    if (!drawPending) { drawPending = true; window.requestAnimationFrame(drawAll); }
  }

  // A message's points as [{series, labels, points}]: its "series" as they are, and its "frames"
  // (rows of [t in milliseconds, ...label values, ...field values]) expanded to points in seconds,
  // skipping null values.
  function seriesOf(data) {
    var out = (data.series || []).slice();
    (data.frames || []).forEach(function (frame) {
      var nl = frame.labels.length;
      frame.fields.forEach(function (field, f) {
        var byLabels = {};
        frame.rows.forEach(function (row) {
          var value = row[1 + nl + f];
          if (value === null || value === undefined) { return; }
          var key = row.slice(1, 1 + nl).join(",");
          if (!byLabels[key]) {
            var labels = {};
            for (var i = 0; i < nl; i++) { labels[frame.labels[i]] = row[1 + i]; }
            byLabels[key] = {series: frame.scope + "." + field, labels: labels, points: []};
            out.push(byLabels[key]);
          }
          byLabels[key].points.push([row[0] / 1000, value]);
        });
      });
    });
    return out;
  }

  // -- the series API (range changes, long ranges, a reset)

  function reload() {
    var range = rangeOf(state.range);
    var end = Date.now() / 1000 + 1, start = end - range.seconds - 1;
    var requests = [];
    setBusy(true);
    Object.keys(charts).forEach(function (id) {
      var chart = charts[id];
      chart.traces.forEach(function (t) { t.x = []; t.y = []; });
      state.step = 0;
      chart.spec.queries.forEach(function (q) {
        var params = new URLSearchParams({series: q.series, start: start.toFixed(3), end: end.toFixed(3)});
        Object.keys(q.filter).forEach(function (k) { params.set(k, q.filter[k]); });
        requests.push(fetch(config.query_url + "?" + params.toString(), {credentials: "same-origin"})
          .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
          .then(function (body) {
            state.step = Math.max(state.step, body.step || 0);
            body.results.forEach(function (item) {
              var trace = findTrace(chart, q.series, item.labels);
              if (trace) { insertPoints(trace, item.points); }
            });
          }));
      });
    });
    return Promise.all(requests)
      .catch(function () { setStatusText(S.load_failed); })
      .then(function () { setBusy(false); scheduleDraw(); });
  }

  function setRange(key) {
    state.range = key;
    document.querySelectorAll("[data-range]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-range") === key ? "true" : "false");
    });
    if (state.reloadTimer) { clearInterval(state.reloadTimer); state.reloadTimer = null; }
    if (!rangeOf(key).live) { state.reloadTimer = setInterval(reload, 60000); }
    return reload();
  }

  // -- the stream

  function setBusy(busy) { document.body.classList.toggle("live-loading", busy); }

  function setStatusText(text) {
    var el = document.getElementById("stream-status");
    if (el) { el.textContent = text; }
  }

  function setStatus(name, text) {
    var el = document.getElementById("stream-status");
    document.body.classList.toggle("stream-down", name === "stale");
    if (!el) { return; }
    el.setAttribute("data-state", name);
    el.textContent = text || (name === "live" ? S.live : name === "stale" ? S.stale
      : name === "periodic" ? S.periodic : S.connecting);
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + config.ws_path);
    state.socket = socket;
    if (state.attempts === 0) { setStatus("connecting"); }
    socket.onopen = function () {
      state.open = true;
      state.attempts = 0;
      socket.send(JSON.stringify({type: "subscribe", topics: config.topics, cursor: state.cursor}));
      setStatus("live");
      freshness();
    };
    socket.onmessage = function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      handle(message);
    };
    socket.onclose = function () {
      if (state.socket !== socket) { return; }
      state.open = false;
      setStatus("stale");
      scheduleDraw();
      var delay = state.reconnectDelayMs !== null ? state.reconnectDelayMs
        : RECONNECT_MS[Math.min(state.attempts, RECONNECT_MS.length - 1)];
      state.attempts++;
      setTimeout(connect, delay);
    };
  }

  function handle(message) {
    if (message.type === "data") {
      // The server's cursor is safe to resume from (everything before it was sent): keep the latest.
      if (typeof message.cursor === "number") { state.cursor = message.cursor; }
      state.lastMessage = Date.now();
      state.messages++;
      var live = rangeOf(state.range).live;
      seriesOf(message.data).forEach(function (item) {
        if (!live) { return; }
        Object.keys(charts).forEach(function (id) {
          var trace = findTrace(charts[id], item.series, item.labels);
          if (trace) { insertPoints(trace, item.points); }
        });
      });
      if (message.data && (message.data.series || message.data.frames)) { markUpdated(); }
      hooks.forEach(function (hook) { hook(message); });
      scheduleDraw();
    } else if (message.type === "subscribed") {
      if (typeof message.cursor === "number") { state.cursor = message.cursor; }
    } else if (message.type === "reset") {
      reload();
    } else if (message.type === "error") {
      if (window.console) { window.console.warn("stream:", message.detail); }
    }
  }

  // -- start

  (config.charts || []).forEach(function (spec) {
    var div = document.getElementById("chart-" + spec.id);
    if (!div) { return; }
    charts[spec.id] = {spec: spec, div: div, traces: spec.traces};
  });
  document.querySelectorAll("[data-range]").forEach(function (button) {
    button.addEventListener("click", function () { setRange(button.getAttribute("data-range")); });
  });
  // New names for dynamic traces ("GPU 3" for accelerator 17), by chart id, sent by live_regions.js
  // after a re-read of the page.
  document.addEventListener("live-names", function (event) {
    Object.keys(charts).forEach(function (id) {
      var chart = charts[id], names = event.detail[id];
      if (!chart.spec.dynamic || !names) { return; }
      Object.assign(chart.spec.names, names);
      chart.traces.forEach(function (t) {
        var name = names[String(t.labels[chart.spec.name_label])];
        if (name) { t.name = name; }
      });
    });
    scheduleDraw();
  });
  markUpdated();  // what the page shows is as of now
  drawAll();
  setInterval(scheduleDraw, 1000);  // moves the time axis and the "no new data" notes along
  if (config.topics.length) { connect(); }

  window.boomLive = {
    config: config, state: state, charts: charts,
    on: function (hook) { hooks.push(hook); },
    setRange: setRange,
    redraw: scheduleDraw,
    // How long to wait before reconnecting after the socket drops (null: 1, 2, 5, 10 s back-off).
    setReconnectDelay: function (ms) { state.reconnectDelayMs = ms; },
    markUpdated: markUpdated,
    clock: clock,
    zoneOffsetMs: zoneOffsetMs,
    seriesOf: seriesOf,
    points: function (chartId, traceIndex) {
      var chart = charts[chartId];
      var trace = chart && chart.traces[traceIndex || 0];
      return trace ? trace.x.slice() : [];
    },
  };
}());
