// Draws server-built plotly figures ({data, layout}). plotly.js (served by this server from the plotly
// package) is large: evaluating it is one long task (about a second on a small machine) during which clicks
// wait. So it is loaded only when a plot first scrolls into view, never while the table above is in use.
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

  function whenVisible(element) {
    if (!("IntersectionObserver" in window)) return Promise.resolve();
    return new Promise((resolve) => {
      const observer = new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting)) { observer.disconnect(); resolve(); }
      }, { rootMargin: "100px" });
      observer.observe(element);
    });
  }

  return {
    plotly,
    async draw(element, figure) {
      if (!window.Plotly) await whenVisible(element);
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
      if (!window.Plotly) await whenVisible(element);
      const Plotly = await plotly();
      Plotly.purge(element);
      element.textContent = text;
      element.dataset.message = "1";
    },
  };
})();
