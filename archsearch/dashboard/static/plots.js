// Draws a server-built plotly figure ({data, layout}) into an element; plotly.js is served by this server.
"use strict";
window.archsearchPlots = {
  draw(element, figure) {
    if (!figure) { window.Plotly.purge(element); return; }
    return window.Plotly.react(element, figure.data, figure.layout, { displaylogo: false, responsive: true });
  },
  message(element, text) {
    window.Plotly.purge(element);
    element.textContent = text;
  },
};
