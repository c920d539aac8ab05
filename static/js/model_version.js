// Model version page: follows the version on its stream topic (modelversion:<id>). Transitions and an
// import's files re-read the page's live regions (live_regions.js: status, detail, actions, facts, files,
// history); while a verification runs, its progress ({"state": {"progress": {"modelversion": p}}})
// moves the bar here, without a re-read. No polling and no reload.
(function () {
  "use strict";
  var live = window.boomLive;
  if (!live) { return; }
  live.on(function (message) {
    var st = message.data && message.data.state;
    var p = st && st.progress && st.progress.modelversion;
    if (typeof p !== "number") { return; }
    var card = document.getElementById("live");
    if (!card || card.getAttribute("data-working") !== "1") { return; }  // a re-read says it ended
    p = Math.max(0, Math.min(1, p));
    var bar = document.getElementById("live-bar"), percent = document.getElementById("live-percent");
    if (bar) { bar.style.width = (p * 100).toFixed(1) + "%"; }
    if (percent) { percent.textContent = Math.round(p * 100) + "%"; }
    card.setAttribute("data-progress", String(p));
    live.markUpdated();
  });
}());
