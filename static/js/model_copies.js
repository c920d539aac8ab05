// Model version page, "Copies on nodes": while a copy is pending, copying, verifying or removing, poll the
// copies API every two seconds and move its progress bar; reload once every copy has settled (to show the
// buttons that fit the new status). Without the API (no JavaScript, a lost connection) the page still shows
// the state it was rendered with.
(function () {
  var table = document.getElementById("copies");
  if (!table) { return; }
  var text = JSON.parse(document.getElementById("copies-i18n").textContent);
  var busy = ["pending", "copying", "verifying", "removing"];
  var url = table.getAttribute("data-url");
  var settledOnLoad = true;

  function size(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function field(row, name) { return row.querySelector("[data-field='" + name + "']"); }

  function show(copy) {
    var row = document.getElementById("copy-" + copy.id);
    if (!row) { return false; }
    var p = copy.status === "ready" ? 1 : Math.max(0, Math.min(1, copy.progress || 0));
    var badge = field(row, "status");
    badge.className = "badge copy-" + copy.status;
    badge.textContent = (text.statuses || {})[copy.status] || copy.status;
    field(row, "bar").style.width = (p * 100).toFixed(1) + "%";
    field(row, "percent").textContent = Math.round(p * 100) + "%";
    if (copy.size_bytes) { field(row, "bytes").textContent = size(copy.bytes_done) + " / " + size(copy.size_bytes); }
    field(row, "detail").textContent = copy.detail || "";
    return busy.indexOf(copy.status) >= 0;
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (page) {
        var working = false;
        var ids = {};
        (page.results || []).forEach(function (copy) { ids[copy.id] = true; if (show(copy)) { working = true; } });
        var gone = Array.prototype.some.call(table.querySelectorAll("tr[data-copy]"),
          function (row) { return !ids[row.getAttribute("data-copy")]; });
        if (working && !gone) { settledOnLoad = false; setTimeout(poll, 2000); return; }
        if (!settledOnLoad || gone) { window.location.reload(); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }

  var anyBusy = Array.prototype.some.call(table.querySelectorAll("[data-field='status']"), function (badge) {
    return busy.some(function (s) { return badge.classList.contains("copy-" + s); });
  });
  if (anyBusy) { settledOnLoad = false; setTimeout(poll, 2000); }
})();
