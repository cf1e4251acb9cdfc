// Live updates: the htmx websocket extension swaps pushed widgets in by id and
// reconnects by itself; this shows a banner while the socket is down. A socket the
// server refused (close codes 4400-4499) is not retried by htmx, so the banner says
// why instead of "reconnecting" and stays.
(function () {
  var REFUSED = {
    4400: "the page asked for a live feed the server does not serve; reload the page",
    4401: "you are signed out; sign in again",
    4403: "your account is not staff"
  };
  var PAUSED = "Live updates are paused: reconnecting…";

  function refused() { return document.body.dataset.live === "refused"; }

  function banner(show) {
    if (refused()) return;
    var el = document.getElementById("live-banner");
    if (el) { el.hidden = !show; el.textContent = PAUSED; }
    document.body.dataset.live = show ? "paused" : "on";
  }

  function refuse(close) {
    var words = REFUSED[close.code] || "the server refused it (code " + close.code + ")";
    if (close.reason) words += " (" + close.reason + ")";
    var el = document.getElementById("live-banner");
    if (el) {
      el.textContent = "Live updates unavailable: " + words + ".";
      el.classList.add("refused");
      el.hidden = false;
    }
    document.body.dataset.live = "refused";
  }

  document.addEventListener("htmx:wsOpen", function () { banner(false); });
  document.addEventListener("htmx:wsClose", function (e) {
    var close = e.detail && e.detail.event;
    if (close && close.code >= 4400 && close.code <= 4499) refuse(close);
    else banner(true);
  });
  document.addEventListener("htmx:wsError", function () { banner(true); });
  // Count pushed updates so tests and curious operators can see pushes arrive.
  document.addEventListener("htmx:wsAfterMessage", function () {
    document.body.dataset.pushes = String(Number(document.body.dataset.pushes || 0) + 1);
  });
})();
