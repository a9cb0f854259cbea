// Keeps the page current without a framework: every 15 s ask /api/status whether anything
// changed (If-None-Match on its ETag, a 304 costs nothing); when it did, or after 5 minutes
// (relative times age), reload, reopening the diffs the reader had open.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="revision"]');
  if (!meta || !window.fetch) { return; }
  var etag = '"' + meta.getAttribute("content") + '"';
  var loaded = Date.now();
  var KEY = "pg-schema-sync-open:" + location.pathname;

  try {
    var open = JSON.parse(sessionStorage.getItem(KEY) || "[]");
    open.forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.open = true; }
    });
    sessionStorage.removeItem(KEY);
  } catch (e) { /* storage off: nothing to restore */ }

  function reload() {
    try {
      var ids = Array.prototype.map.call(
        document.querySelectorAll("details[open][id]"), function (el) { return el.id; });
      sessionStorage.setItem(KEY, JSON.stringify(ids));
    } catch (e) { /* storage off */ }
    location.reload();
  }

  function check() {
    if (Date.now() - loaded > 5 * 60 * 1000) { reload(); return; }
    fetch("/api/status", { headers: { "If-None-Match": etag }, cache: "no-store" })
      .then(function (r) {
        if (r.status === 200 && r.headers.get("ETag") && r.headers.get("ETag") !== etag) {
          reload();
        }
      })
      .catch(function () { /* the daemon restarting: try again next time */ });
  }

  setInterval(check, 15000);
})();
