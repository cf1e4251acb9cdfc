// The browser leg of the freshness canary: a pushed freshness widget carries, per projection, the
// newest canary its projector committed (data-canary-id) and when it was appended (data-appended-at,
// epoch ms of the appender's clock). When a push brings a canary this page has not shown before,
// Date.now() - appendedAt is append -> browser updated, shown in that row's Browser cell. The first
// canary a page sees (page load, and the fresh render a socket pushes on each (re)connect) is only a
// baseline: it may have been appended long before the page opened, so it is never shown as a figure.
// A row that showed no canary in that render counts any canary it shows later.
// Formatted as the server's "millis" filter formats (2 decimals below 10 ms, else none): one format per kind.
(function () {
  var seen = {};    // projection -> canary id last shown
  var figure = {};  // projection -> its latest browser figure (ms)

  function millis(ms) {
    var digits = Math.abs(ms) < 10 ? 2 : 0;
    return ms.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) + " ms";
  }

  function update(row) {
    var p = row.dataset.projection, id = row.dataset.canaryId || "";
    var cell = row.querySelector('[data-field="canary-browser"]');
    if (!cell || !id) {
      if (seen[p] === undefined) seen[p] = "";  // none shown: the next canary is new to this page
      return;
    }
    if (seen[p] === undefined) {
      seen[p] = id;
    } else if (seen[p] !== id) {
      seen[p] = id;
      figure[p] = Date.now() - Number(row.dataset.appendedAt);
    }
    if (figure[p] !== undefined) {
      cell.textContent = millis(figure[p]);
      cell.dataset.ms = String(figure[p]);
    }
  }

  function scan(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll("[data-board=canary-freshness] tr[data-projection]").forEach(update);
  }

  document.addEventListener("DOMContentLoaded", function () { scan(document); });
  document.addEventListener("htmx:load", function (e) { scan(e.target); });
  document.addEventListener("htmx:oobAfterSwap", function (e) { scan(e.target); });
  // A (re)connected socket first pushes every widget afresh: those canaries are a new baseline.
  document.addEventListener("htmx:wsOpen", function () { seen = {}; });
})();
