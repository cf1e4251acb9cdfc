// Live updates: the htmx websocket extension swaps pushed widgets in by id and
// reconnects by itself; this shows a banner while the socket is down.
(function () {
  function banner(show) {
    var el = document.getElementById("live-banner");
    if (el) el.hidden = !show;
    document.body.dataset.live = show ? "paused" : "on";
  }
  document.addEventListener("htmx:wsOpen", function () { banner(false); });
  document.addEventListener("htmx:wsClose", function () { banner(true); });
  document.addEventListener("htmx:wsError", function () { banner(true); });
  // Count pushed updates so tests and curious operators can see pushes arrive.
  document.addEventListener("htmx:wsAfterMessage", function () {
    document.body.dataset.pushes = String(Number(document.body.dataset.pushes || 0) + 1);
  });
})();
