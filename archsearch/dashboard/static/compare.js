// The compare page: curves side by side and memory bars from the figures embedded as JSON data.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const figures = JSON.parse(document.getElementById("compare-figures").textContent);
  window.archsearchPlots.draw(document.getElementById("compare-curves"), figures.curves);
  window.archsearchPlots.draw(document.getElementById("compare-memory"), figures.memory);
  const diff = document.getElementById("spec-diff");
  document.getElementById("show-same").addEventListener("change", (event) => {
    diff.classList.toggle("show-same", event.target.checked);
  });
});
