// Charts drawn with the vendored uPlot from data in the page (no inline script): an element with
// data-trend holds {"from": s, "to": s, "x": [epoch seconds], "series": {name: [score 0..1 or null]}};
// it is drawn over [from, to] when the page loads and again whenever a live push swaps it in.
// With a "kind" (rate, bytes, millis, ratio) the values are raw figures formatted as the template
// filter of that name formats them (console/templatetags/numbers.py), one format per kind.
(function () {
  var COLORS = ["#60a5fa", "#f87171", "#4ade80", "#c084fc", "#fbbf24"];
  var AXIS = { stroke: "#9aa4b2", grid: { stroke: "#2a3340" }, ticks: { stroke: "#2a3340" } };

  function percent(v) { return v == null ? null : Math.floor(v * 10000) / 100; }

  function fixed(v, digits) {
    return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  var KINDS = {
    rate: function (v) { return (Math.abs(v) >= 10 ? fixed(v, 0) : v.toFixed(1)) + "/s"; },
    bytes: function (v) {
      var units = [["GiB", 1073741824], ["MiB", 1048576], ["KiB", 1024]];
      for (var i = 0; i < units.length; i++) if (Math.abs(v) >= units[i][1]) return fixed(v / units[i][1], 1) + " " + units[i][0];
      return v.toFixed(0) + " B";
    },
    millis: function (v) { return fixed(v * 1000, Math.abs(v) < 0.01 ? 2 : 0) + " ms"; },
    ratio: function (v) { return v.toFixed(2) + "×"; }
  };

  function drawFigures(el, data) {
    var format = KINDS[data.kind];
    var names = Object.keys(data.series);
    var rows = [data.x].concat(names.map(function (n) { return data.series[n]; }));
    var opts = {
      width: Math.max(320, el.clientWidth || 640), height: el.classList.contains("short") ? 150 : 220,
      scales: { x: { time: true, range: [data.from, data.to] },
                y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; } } },
      legend: { live: false },
      series: [{ label: "sampled (UTC)" }].concat(names.map(function (n, i) {
        return { label: n, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false, points: { show: data.x.length < 3 },
                 value: function (u, v) { return v == null ? "—" : format(v); } };
      })),
      axes: [Object.assign({}, AXIS), Object.assign({ size: 84, values: function (u, vals) {
        return ticks(data.kind, vals, format); } }, AXIS)]
    };
    el.textContent = "";
    new uPlot(opts, rows, el);
    el.dataset.drawn = "1";
  }

  // Axis ticks: zero is "0"; bytes are all in the unit of the largest tick (never 488.3 KiB beside 1.4 MiB).
  function ticks(kind, vals, format) {
    var top = Math.max.apply(null, vals.map(Math.abs));
    var unit = kind === "bytes" ? (top >= 1073741824 ? ["GiB", 1073741824] : top >= 1048576 ? ["MiB", 1048576]
                                   : top >= 1024 ? ["KiB", 1024] : null) : null;
    return vals.map(function (v) {
      if (v === 0) return "0";
      return unit ? fixed(v / unit[1], 1) + " " + unit[0] : format(v);
    });
  }

  function draw(el) {
    if (el.dataset.drawn === "1" || typeof uPlot === "undefined") return;
    var data = JSON.parse(el.dataset.trend);
    if (data.kind) return drawFigures(el, data);
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
