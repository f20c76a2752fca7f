// Draws server-built plotly figures ({data, layout}) with plotly.js's basic bundle (served by this server).
// Evaluating plotly.js and drawing a plot are long tasks during which clicks wait, so:
// - plotly.js is loaded only when a plot first comes into view;
// - a plot is drawn only when no request the page marked urgent (`hold`: the trials table's) is in flight and
//   the browser is idle, so a sort clicked while the plots load is answered before they draw.
"use strict";
window.archsearchPlots = (() => {
  let loading = null;
  const urgent = new Set();  // promises of requests that must not wait behind a plot's drawing

  function hold(promise) {
    urgent.add(promise);
    const done = () => urgent.delete(promise);
    promise.then(done, done);
    return promise;
  }

  // Resolves once no urgent request is in flight and the browser has had an idle moment after the last one.
  async function quiet() {
    do {
      while (urgent.size) await Promise.allSettled([...urgent]);
      await new Promise((resolve) => (window.requestIdleCallback || setTimeout)(resolve, { timeout: 500 }));
    } while (urgent.size);
  }

  function plotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = "/assets/plotly-basic.min.js";
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
    hold,
    async draw(element, figure) {
      if (!window.Plotly) await whenVisible(element);
      await quiet();  // evaluating plotly.js and drawing are long tasks: let the table's requests go first
      const Plotly = await plotly();
      await quiet();
      if (element.dataset.message) {  // replace a message; a plot already there is updated in place
        element.textContent = "";
        delete element.dataset.message;
      }
      if (!figure) { Plotly.purge(element); return; }
      await Plotly.react(element, figure.data, figure.layout, { displaylogo: false, responsive: true });
    },
    async message(element, text) {
      if (!window.Plotly) await whenVisible(element);
      await quiet();
      const Plotly = await plotly();
      await quiet();
      Plotly.purge(element);
      element.textContent = text;
      element.dataset.message = "1";
    },
  };
})();
