// Job page: show an instance's log tail on demand (GET /api/v1/instances/{id}/logs/).
document.querySelectorAll("[data-logs]").forEach(function (button) {
  button.addEventListener("click", function () {
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
});
