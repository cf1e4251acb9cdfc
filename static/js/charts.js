// Charts drawn with the vendored uPlot from data in the page (no inline script): an element with
// data-trend holds {"from": s, "to": s, "x": [epoch seconds], "series": {name: [score 0..1 or null]}};
// it is drawn over [from, to] when the page loads and again whenever a live push swaps it in.
(function () {
  var COLORS = ["#60a5fa", "#f87171", "#4ade80", "#c084fc"];
  var AXIS = { stroke: "#9aa4b2", grid: { stroke: "#2a3340" }, ticks: { stroke: "#2a3340" } };

  function percent(v) { return v == null ? null : Math.floor(v * 10000) / 100; }

  function draw(el) {
    if (el.dataset.drawn === "1" || typeof uPlot === "undefined") return;
    var data = JSON.parse(el.dataset.trend);
    var names = Object.keys(data.series);
    var rows = [data.x].concat(names.map(function (n) { return data.series[n].map(percent); }));
    var low = 100;
    rows.slice(1).forEach(function (r) { r.forEach(function (v) { if (v != null && v < low) low = v; }); });
    var opts = {
      width: Math.max(320, el.clientWidth || 640), height: 220,
      scales: { x: { time: true, range: [data.from, data.to] }, y: { range: [Math.max(0, Math.floor(low) - 1), 100] } },
      legend: { live: false },
      series: [{ label: "checked (UTC)" }].concat(names.map(function (n, i) {
        return { label: n, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true, points: { show: true },
                 value: function (u, v) { return v == null ? "—" : v.toFixed(2) + "%"; } };
      })),
      axes: [Object.assign({}, AXIS), Object.assign({ size: 64, values: function (u, vals) {
        return vals.map(function (v) { return v + "%"; }); } }, AXIS)]
    };
    el.textContent = "";
    new uPlot(opts, rows, el);
    el.dataset.drawn = "1";
  }

  function scan(root) {
    if (!root || !root.querySelectorAll) return;
    if (root.dataset && root.dataset.trend) draw(root);
    root.querySelectorAll("[data-trend]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { scan(document); });
  document.addEventListener("htmx:load", function (e) { scan(e.target); });
})();
