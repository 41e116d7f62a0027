"use strict";
(function () {
  const EPS = 1e-5;  // BatchNorm's default, as charlab.batchnorm.BatchNorm1d
  const BATCH = [-1.2, 0.4, 0.0, 1.5, -0.3];  // x[2] is set by the slider
  const MOVED = 2;
  const SCALE = 3;  // the bars span -3..3 normalised units
  const slider = document.getElementById("bn-slider");
  const rows = document.getElementById("bn-rows");

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function bar(row, value) {
    const td = cell(row, "", "bar-cell");
    const track = document.createElement("div");
    track.className = "bar";
    const fill = document.createElement("span");
    const frac = Math.max(-1, Math.min(1, value / SCALE)) / 2;  // -0.5..0.5 of the width
    fill.style.left = (50 + Math.min(0, frac) * 100) + "%";
    fill.style.width = Math.abs(frac) * 100 + "%";
    const zero = document.createElement("div");
    zero.className = "zero";
    track.appendChild(fill);
    track.appendChild(zero);
    td.appendChild(track);
  }

  function render() {
    const x = BATCH.slice();
    x[MOVED] = parseFloat(slider.value);
    const n = x.length;
    const mean = x.reduce((a, b) => a + b, 0) / n;
    const variance = x.reduce((a, b) => a + (b - mean) * (b - mean), 0) / n;
    const std = Math.sqrt(variance + EPS);
    document.getElementById("bn-slider-value").textContent = x[MOVED].toFixed(2);
    document.getElementById("bn-mean").textContent = mean.toFixed(4);
    document.getElementById("bn-std").textContent = std.toFixed(4);
    rows.replaceChildren();
    x.forEach(function (xi, i) {
      const y = (xi - mean) / std;
      const row = document.createElement("tr");
      if (i === MOVED) row.style.fontWeight = "600";
      cell(row, String(i), "num");
      cell(row, xi.toFixed(2), "num bn-x");
      cell(row, y.toFixed(4), "num bn-y");
      bar(row, y);
      rows.appendChild(row);
    });
  }

  slider.addEventListener("input", render);
  render();
})();
