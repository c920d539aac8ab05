// Model version page: while the version is being imported or verified, poll the API every second
// and move the progress bar; reload the page when the work ends (to show files and checksums).
(function () {
  var live = document.getElementById("live");
  if (!live || live.getAttribute("data-live") !== "1") { return; }
  var url = live.getAttribute("data-url");
  var text = JSON.parse(document.getElementById("live-i18n").textContent);
  var bar = document.getElementById("live-bar");
  var percent = document.getElementById("live-percent");
  var label = document.getElementById("live-label");
  var badge = document.getElementById("version-status");
  var detail = document.getElementById("status-detail");

  function show(version) {
    var working = version.status === "verifying" || version.importing;
    if (version.status === "verifying") {
      var p = Math.max(0, Math.min(1, version.progress || 0));
      bar.style.width = (p * 100).toFixed(1) + "%";
      percent.textContent = Math.round(p * 100) + "%";
      label.textContent = text.verifying;
    } else if (version.importing) {
      label.textContent = text.importing;
    }
    badge.className = "badge mv-" + version.status;
    badge.textContent = (text.statuses || {})[version.status] || version.status;
    if (version.status_detail) { detail.hidden = false; detail.textContent = version.status_detail_display || version.status_detail; }
    return working;
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (version) {
        if (show(version)) { setTimeout(poll, 1000); return; }
        label.textContent = text.done;
        setTimeout(function () { window.location.reload(); }, 500);
      })
      .catch(function () { label.textContent = text.lost; setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
