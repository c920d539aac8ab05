// Model version page, "Copies on nodes": follows the copies on the version's stream topic
// (modelversion:<id>). A copy's status change re-reads the copies section (live_regions.js, kind
// "modelcopy": buttons that fit the new status, a copy added or removed); its progress while copying or
// verifying ({"state": {"copies": {id: snapshot}}}) moves its bar here, without a re-read. No polling and
// no reload.
(function () {
  "use strict";
  var live = window.boomLive;
  var holder = document.getElementById("copies-i18n");
  if (!live || !holder) { return; }
  var text = JSON.parse(holder.textContent);

  function size(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function field(row, name) { return row.querySelector("[data-field='" + name + "']"); }

  function show(id, copy) {
    var row = document.getElementById("copy-" + id);
    if (!row || !copy || !copy.status || copy.status === "removed") { return; }
    var p = copy.status === "ready" ? 1 : Math.max(0, Math.min(1, copy.progress || 0));
    var badge = field(row, "status");
    if (badge) {
      badge.className = "badge copy-" + copy.status;
      badge.textContent = (text.statuses || {})[copy.status] || copy.status;
    }
    if (field(row, "bar")) { field(row, "bar").style.width = (p * 100).toFixed(1) + "%"; }
    if (field(row, "percent")) { field(row, "percent").textContent = Math.round(p * 100) + "%"; }
    if (copy.size_bytes && field(row, "bytes")) {
      field(row, "bytes").textContent = size(copy.bytes_done || 0) + " / " + size(copy.size_bytes);
    }
    row.setAttribute("data-progress", String(p));
  }

  live.on(function (message) {
    var st = message.data && message.data.state;
    if (!st || !st.copies) { return; }
    Object.keys(st.copies).forEach(function (id) { show(id, st.copies[id]); });
    live.markUpdated();
  });
}());
