// The firing-alert count and worst severity in the header of every page, kept live.
// Follows the "alerts" topic of the /ws/stream/ websocket (the evaluator publishes the summary when
// alerts change); polls GET /api/v1/alerts/summary/ at first, whenever the socket is down, and once a
// minute anyway. On the alerts page it also reveals the "alerts changed — reload" link.
(function () {
  "use strict";
  var badge = document.getElementById("alert-count");
  if (!badge || !window.fetch) { return; }
  var url = badge.getAttribute("data-summary-url");
  var POLL_MS = 10000, HIDDEN_POLL_MS = 30000, LIVE_POLL_MS = 60000, RECONNECT_MS = 15000;
  var last = null, live = false, timer = null;

  function render(summary) {
    if (!summary || typeof summary.firing !== "number") { return; }
    var key = JSON.stringify(summary);
    var changed = last !== null && key !== last;
    last = key;
    var firing = summary.firing;
    badge.hidden = false;
    badge.setAttribute("data-severity", firing ? (summary.worst_severity || "info") : "none");
    var text = firing ? firing + " " + badge.getAttribute("data-text-firing") : badge.getAttribute("data-text-none");
    if (firing && summary.worst_severity) {
      text += " · " + (badge.getAttribute("data-text-" + summary.worst_severity) || summary.worst_severity);
    }
    badge.textContent = text;
    badge.title = badge.getAttribute("data-text-detail")
      .replace("%(firing)s", firing).replace("%(acknowledged)s", summary.acknowledged)
      .replace("%(pending)s", summary.pending).replace("%(suppressed)s", summary.suppressed);
    if (changed) {
      var note = document.getElementById("alerts-changed");
      if (note) { note.hidden = false; }
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(poll, live ? LIVE_POLL_MS : (document.hidden ? HIDDEN_POLL_MS : POLL_MS));
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(render)
      .catch(function () { /* offline: try again later */ })
      .then(schedule);
  }

  function connect() {
    if (!("WebSocket" in window)) { return; }
    var socket;
    try {
      socket = new WebSocket((location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + "/ws/stream/");
    } catch (e) { return; }
    socket.onopen = function () { socket.send(JSON.stringify({type: "subscribe", topics: ["alerts"]})); };
    socket.onmessage = function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "subscribed" && message.topics && message.topics.indexOf("alerts") >= 0) {
        live = true;
        schedule();
      } else if (message.type === "data" && message.topic === "alerts" && message.data && message.data.state) {
        render(message.data.state.summary);
      }
    };
    socket.onclose = function () {
      if (live) { live = false; poll(); }
      setTimeout(connect, RECONNECT_MS);
    };
  }

  document.addEventListener("visibilitychange", function () { if (!document.hidden && !live) { poll(); } });
  // For tests and the curious: whether the count follows the stream, and the last summary.
  window.boomAlertCount = {live: function () { return live; }, summary: function () { return last && JSON.parse(last); }};
  poll();
  connect();
})();
