// Job page: show an instance's log tail on demand (GET /api/v1/instances/{id}/logs/). Delegated from
// the document: the instances table is a live region that live_regions.js replaces when states change.
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-logs]") : null;
  if (!button) { return; }
  var id = button.getAttribute("data-logs");
  var card = document.getElementById("log-card");
  var pre = document.getElementById("log");
  card.hidden = false;
  pre.textContent = "…";
  fetch("/api/v1/instances/" + id + "/logs/?tail=300", {credentials: "same-origin"})
    .then(function (r) { return r.json(); })
    .then(function (body) {
      document.getElementById("log-title").textContent = "#" + id;
      pre.textContent = (body.error ? "[" + body.error + "]\n" : "") + (body.text || "");
      pre.scrollTop = pre.scrollHeight;
    })
    .catch(function (err) { pre.textContent = String(err); });
});
