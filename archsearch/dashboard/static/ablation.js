// The ablation page: each cell's effect (paired difference to the base, with its interval), from embedded JSON.
"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  const data = document.getElementById("ablation-figure");
  if (!data) return;
  const chart = document.getElementById("ablation-chart");
  await window.archsearchPlots.draw(chart, JSON.parse(data.textContent));
  chart.dataset.ready = "1";
});
