// Every page: behaviour that would otherwise be an inline handler (the Content-Security-Policy allows
// scripts from files only). A <select data-autosubmit> submits its form when changed (the language,
// the time zone).
(function () {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // The browser's time zone, for the server (console.timezones): times are rendered in it unless the
  // user chose another in the user menu. A first page that shows times in another zone is loaded once
  // more (the login page, which shows none, is not).
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { zone = null; }
  if (!zone) { return; }
  var match = document.cookie.match(/(?:^|;\s*)boom_tz=([^;]*)/);
  var had = match ? decodeURIComponent(match[1]) : null;
  if (had === zone) { return; }
  document.cookie = "boom_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
  var body = document.body;
  if (body.getAttribute("data-tz-source") !== "user" && body.getAttribute("data-tz") !== zone &&
      document.querySelector("time[datetime], #live-config") && !window.sessionStorage.getItem("boom-tz-reloaded")) {
    window.sessionStorage.setItem("boom-tz-reloaded", "1");
    window.location.reload();
  }
})();
