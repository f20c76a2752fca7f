// Draws server-built plotly figures ({data, layout}). plotly.js (served by this server from the plotly
// package) is large, so it is loaded only once the page's table is up, on the first draw.
"use strict";
window.archsearchPlots = (() => {
  let loading = null;

  function plotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = "/assets/plotly.min.js";
        script.onload = () => resolve(window.Plotly);
        script.onerror = () => reject(new Error("plotly.js could not be loaded from this server"));
        document.head.append(script);
      });
    }
    return loading;
  }

  return {
    plotly,
    async draw(element, figure) {
      const Plotly = await plotly();
      // Drawing is one long task; let pending clicks and keys run first.
      await new Promise((resolve) => (window.requestIdleCallback || setTimeout)(resolve, { timeout: 500 }));
      if (element.dataset.message) {  // replace a message; a plot already there is updated in place
        element.textContent = "";
        delete element.dataset.message;
      }
      if (!figure) { Plotly.purge(element); return; }
      await Plotly.react(element, figure.data, figure.layout, { displaylogo: false, responsive: true });
    },
    async message(element, text) {
      const Plotly = await plotly();
      Plotly.purge(element);
      element.textContent = text;
      element.dataset.message = "1";
    },
  };
})();
