// Every page: behaviour that would otherwise be an inline handler (the Content-Security-Policy allows
// scripts from files only). A <select data-autosubmit> submits its form when changed (the language).
(function () {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
})();
