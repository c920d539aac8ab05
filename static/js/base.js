// Every page: behaviour that would otherwise be an inline handler (the Content-Security-Policy allows
// scripts from files only). A <select data-autosubmit> submits its form when changed (the language,
// the time zone).
(function () {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // The browser's time zone, for the server (console.timezones): times are rendered in it unless the
  // user chose another in the user menu. The first page rendered without it is loaded once more.
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { zone = null; }
  if (!zone) { return; }
  var match = document.cookie.match(/(?:^|;\s*)boom_tz=([^;]*)/);
  var had = match ? decodeURIComponent(match[1]) : null;
  if (had === zone) { return; }
  document.cookie = "boom_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
  var html = document.body;
  if (html.getAttribute("data-tz-source") !== "user" && html.getAttribute("data-tz") !== zone &&
      document.readyState !== "loading" && !window.sessionStorage.getItem("boom-tz-reloaded")) {
    window.sessionStorage.setItem("boom-tz-reloaded", "1");
    window.location.reload();
  }
})();
