// Live regions: parts of a page (elements with data-live-region and an id) that follow the state of
// what they show without a reload. The stream says what changed ({"state": {"changed": {kind: time}}},
// console.core.broadcast.changed; "summary" on the alerts topic); when a region follows one of those
// kinds (data-live-on="job instance"), the page is fetched again (header X-Live-Regions: the server
// skips the chart points) and each such region is replaced by its new rendering, at most about once a
// second. The server renders them, so states, causes and times read exactly as on a fresh load.
(function () {
  "use strict";
  var live = window.boomLive;
  if (!live) { return; }
  var MIN_GAP_MS = 1000;
  var timer = null, inFlight = false, again = false, lastAt = 0, refreshes = 0, wanted = {};

  function regionKinds(el) { return (el.getAttribute("data-live-on") || "").split(/\s+/).filter(Boolean); }

  function kindsOf(message) {
    var st = message.data && message.data.state;
    if (!st) { return []; }
    var kinds = Object.keys(st.changed || {});
    if (st.summary) { kinds.push("summary"); }
    return kinds;
  }

  function schedule() {
    if (inFlight) { again = true; return; }
    if (timer) { return; }
    timer = setTimeout(refresh, Math.max(0, lastAt + MIN_GAP_MS - Date.now()));
  }

  function refresh() {
    timer = null;
    inFlight = true;
    lastAt = Date.now();
    var ids = Object.keys(wanted);
    wanted = {};
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Live-Regions": "1"}})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        ids.forEach(function (id) {
          var old = document.getElementById(id), fresh = doc.getElementById(id);
          if (!old || !fresh || !fresh.hasAttribute("data-live-region")) { return; }
          if (busy(old)) { wanted[id] = true; return; }  // the user is typing in it: when they leave it
          keepTicks(old, fresh);
          if (old.outerHTML !== fresh.outerHTML) { old.replaceWith(document.importNode(fresh, true)); }
        });
        // Names of the entities of dynamic charts ("GPU 3", a new job's name), by chart, for live.js.
        var fresh = doc.getElementById("live-config");
        if (fresh) {
          var names = {};
          (JSON.parse(fresh.textContent).charts || []).forEach(function (c) { names[c.id] = c.names || {}; });
          document.dispatchEvent(new CustomEvent("live-names", {detail: names}));
        }
        document.dispatchEvent(new CustomEvent("live-regions"));
        refreshes++;
        document.body.setAttribute("data-live-refreshes", String(refreshes));
        live.markUpdated();
      })
      .catch(function (err) { if (window.console) { window.console.warn("live regions:", err); } })
      .then(function () {
        inFlight = false;
        if (again) { again = false; schedule(); }
      });
  }

  // A region with a focused field (a comment being typed) waits until the user leaves it.
  function busy(region) {
    var active = document.activeElement;
    return active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName) &&
      active.type !== "checkbox" && active.type !== "submit";
  }

  // Ticked boxes stay ticked (the runs chosen for a comparison).
  function keepTicks(old, fresh) {
    old.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      var twin = fresh.querySelector('input[type=checkbox][name="' + box.name + '"][value="' + box.value + '"]');
      if (twin) { twin.checked = box.checked; if (box.checked) { twin.setAttribute("checked", ""); } else { twin.removeAttribute("checked"); } }
    });
  }

  live.on(function (message) {
    var kinds = kindsOf(message);
    if (!kinds.length) { return; }
    document.querySelectorAll("[data-live-region]").forEach(function (el) {
      if (el.id && regionKinds(el).some(function (k) { return kinds.indexOf(k) >= 0; })) { wanted[el.id] = true; }
    });
    if (Object.keys(wanted).length) { schedule(); }
  });
  document.addEventListener("focusout", function () {
    setTimeout(function () { if (Object.keys(wanted).length) { schedule(); } }, 0);
  });
  live.refreshRegions = function () {
    document.querySelectorAll("[data-live-region]").forEach(function (el) { if (el.id) { wanted[el.id] = true; } });
    schedule();
  };
}());
