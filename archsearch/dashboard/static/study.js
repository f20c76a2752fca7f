// The study page: trials table (server-side sort, filter, paging), plots, and live updates by polling.
// Every stored string reaches the page through textContent, never as markup.
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("study-data").textContent);
  const base = `/api/study/${data.id}`;
  const plots = window.archsearchPlots;
  const POLL_MS = 3000;
  const PAGE = 50;
  const state = { sort: "number", desc: false, filters: {}, offset: 0, stamp: data.stamp, progress: null, selected: new Set(),
                  columnsKey: "", pageIds: [], matching: 0 };
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs = {}, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function wrap(tag, child, attrs = {}) {
    const node = el(tag, attrs);
    node.append(child);
    return node;
  }

  function fmtNumber(v) {
    if (v === null || v === undefined) return "—";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v) && Math.abs(v) >= 1000) return v.toLocaleString("en-US");
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toPrecision(4)));
  }

  function fmtBytes(v) {
    if (v === null || v === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return i === 0 ? `${v} B` : `${Number(v.toPrecision(3))} ${units[i]}`;
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    return body;
  }

  // ---------------------------------------------------------------- table
  function cellValue(row, key) {
    if (key.startsWith("obj:")) return row.values[Number(key.slice(4))];
    if (key.startsWith("param:")) return row.params[key.slice(6)];
    return row[key];
  }

  function renderHead(columns) {
    const key = JSON.stringify(columns.map((c) => [c.key, c.label]));
    const thead = $("trials").tHead;
    if (key !== state.columnsKey) {
      state.columnsKey = key;
      thead.replaceChildren();
      const names = el("tr", { class: "names" });
      const filters = el("tr", { class: "filters" });
      names.append(el("th", {}, ""), el("th", {}, "layers"));
      filters.append(el("th"), el("th"));
      for (const column of columns) {
        const th = el("th", { class: "sortable", "data-key": column.key, title: "sort by " + column.label },
                      column.label);
        th.addEventListener("click", () => {
          state.desc = state.sort === column.key ? !state.desc : false;
          state.sort = column.key;
          state.offset = 0;
          loadTable();
        });
        names.append(th);
        const input = el("input", { type: "search", "data-key": column.key,
                                    placeholder: column.numeric ? "<, >, a..b" : "contains" });
        input.value = state.filters[column.key] || "";
        input.addEventListener("change", () => {
          state.filters[column.key] = input.value;
          state.offset = 0;
          loadTable();
        });
        filters.append(wrap("th", input));
      }
      thead.append(names, filters);
    }
    for (const th of thead.querySelectorAll("th.sortable")) {
      th.classList.toggle("sorted-asc", th.dataset.key === state.sort && !state.desc);
      th.classList.toggle("sorted-desc", th.dataset.key === state.sort && state.desc);
    }
  }

  function renderRow(row, columns) {
    const tr = el("tr", { "data-id": row.id, "data-number": row.number });
    const box = el("input", { type: "checkbox", class: "pick", "aria-label": `select trial ${row.number}` });
    box.checked = state.selected.has(row.id);
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(row.id); else state.selected.delete(row.id);
      $("compare-button").disabled = state.selected.size < 1;
      $("compare-button").textContent = `Compare selected (${state.selected.size})`;
    });
    tr.append(wrap("td", box));
    const strip = el("span", { class: "strip" });
    row.strip.forEach(([symbol, kind, look], i) => {
      const what = look === kind ? kind : look.replace("-", ", ");
      strip.append(el("span", { class: `cell k-${look}`, title: `layer ${i}: ${symbol} (${what})` }));
    });
    tr.append(wrap("td", strip));
    for (const column of columns) {
      const value = cellValue(row, column.key);
      const td = el("td", { class: column.numeric ? "num" : "", "data-key": column.key });
      if (column.key === "number") {
        td.append(el("a", { href: `/study/${data.id}/compare?t=${row.id}` }, `#${row.number}`));
      } else if (column.key === "status") {
        td.append(el("span", { class: `badge status-${row.status}`, title: row.error || "" }, row.status));
        if (row.latest) {  // a running trial: its latest evaluation, as reported to Optuna
          td.append(el("span", { class: "latest", title: "latest evaluation of this running trial" },
                       `${row.latest.metric} ${fmtNumber(row.latest.value)} @ step ${row.latest.step}`));
        }
      } else if (column.key.startsWith("obj:") && row.trained === false && (value === null || value === undefined)) {
        td.append(el("span", { class: "untrained", title: "never trained: the constraints rejected it" }, "untrained"));
      } else if (column.key === "rung") {  // successive halving: where the trial got to, said in words
        td.textContent = row.rung_label || "—";
        td.classList.remove("num");
      } else if (column.key === "memory") {
        td.textContent = fmtBytes(value);
      } else {
        td.textContent = column.numeric ? fmtNumber(value) : (value === null || value === undefined ? "—" : String(value));
      }
      tr.append(td);
    }
    return tr;
  }

  function tableQuery() {
    const q = new URLSearchParams({ sort: state.sort, desc: state.desc ? "1" : "0", offset: state.offset, limit: PAGE });
    for (const [key, value] of Object.entries(state.filters)) if (value) q.set(`f.${key}`, value);
    return q;
  }

  async function loadTable() {
    let page;
    try {
      page = await plots.hold(getJSON(`${base}/trials?${tableQuery()}`));  // plots draw after it
    } catch (err) {
      $("table-error").hidden = false;
      $("table-error").textContent = err.message;
      return;
    }
    showPage(page);
    await loadPagePlots();
  }

  function showPage(page) {
    $("table-error").hidden = true;
    renderHead(page.columns);
    $("trials").tBodies[0].replaceChildren(...page.rows.map((row) => renderRow(row, page.columns)));
    state.matching = page.matching;
    const last = Math.min(page.offset + page.rows.length, page.matching);
    $("table-info").textContent = `rows ${page.matching ? page.offset + 1 : 0}–${last} of ${page.matching}` +
      (page.matching !== page.total ? ` matching (${page.total} in all)` : "");
    $("prev-page").disabled = page.offset === 0;
    $("next-page").disabled = last >= page.matching;
    state.pageIds = page.rows.map((row) => row.id);
    $("trials").dataset.ready = "1";
    if (!$("trials").dataset.firstShownAt) $("trials").dataset.firstShownAt = String(performance.now());
    $("trials").dataset.sort = `${state.sort}:${state.desc ? "desc" : "asc"}`;
  }

  function loadPagePlots() {
    return Promise.all([loadMemory(), loadCurves()]);
  }

  async function loadOptuna() {
    const q = new URLSearchParams();
    if ($("optuna-plot").value) q.set("plot", $("optuna-plot").value);
    if ($("optuna-objective").value) q.set("objective", $("optuna-objective").value);
    try {
      const body = await getJSON(`${base}/optuna?${q}`);
      fillSelect($("optuna-plot"), body.plots.map((p) => [p.key, p.label]), body.plot);
      fillSelect($("optuna-objective"), body.objectives.map((m, i) => [String(i), m]), String(body.objective));
      $("optuna-reason").hidden = !body.reason;
      $("optuna-reason").textContent = body.reason || "";
      await plots.draw($("optuna"), body.figure);
    } catch (err) { await plots.message($("optuna"), err.message); }
    $("optuna").dataset.ready = "1";
  }

  // ---------------------------------------------------------------- plots
  function fillSelect(select, options, chosen) {
    if (select.options.length !== options.length) {
      select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
    }
    select.value = chosen;
  }

  async function loadPareto() {
    const q = new URLSearchParams();
    if ($("pareto-x").value) q.set("x", $("pareto-x").value);
    if ($("pareto-y").value) q.set("y", $("pareto-y").value);
    try {
      const body = await getJSON(`${base}/pareto?${q}`);
      const options = body.axes.map((a) => [a.key, a.label]);
      fillSelect($("pareto-x"), options, body.x);
      fillSelect($("pareto-y"), options, body.y);
      await plots.draw($("pareto"), body.figure);
      if (!$("pareto").dataset.clickable) {
        $("pareto").dataset.clickable = "1";
        $("pareto").on("plotly_click", (event) => {
          const id = event.points[0] && event.points[0].customdata;
          if (id !== undefined) window.location.href = `/study/${data.id}/compare?t=${id}`;
        });
      }
      $("pareto").dataset.points = String(Object.values(body.counts).reduce((a, b) => a + b, 0));
      $("pareto").dataset.ready = "1";
    } catch (err) { plots.message($("pareto"), err.message); }
  }

  async function loadMemory() {
    if (!state.pageIds.length) { plots.message($("memory"), "no trials on this page"); return; }
    try {
      const body = await getJSON(`${base}/memory?ids=${state.pageIds.join(",")}`);
      if (!body.trials) plots.message($("memory"), "no memory figures for these trials");
      else await plots.draw($("memory"), body.figure);
    } catch (err) { plots.message($("memory"), err.message); }
  }

  async function loadCurves() {
    if (!state.pageIds.length) { plots.message($("curves"), "no trials on this page"); return; }
    const q = new URLSearchParams({ ids: state.pageIds.join(",") });
    if ($("curve-metric").value) q.set("metric", $("curve-metric").value);
    try {
      const body = await getJSON(`${base}/curves?${q}`);
      if (body.metrics.length) fillSelect($("curve-metric"), body.metrics.map((m) => [m, m]), body.metric);
      if (!body.trials) plots.message($("curves"), "no loss curves among these trials");
      else await plots.draw($("curves"), body.figure);
    } catch (err) { plots.message($("curves"), err.message); }
  }

  async function loadImportance() {
    const q = new URLSearchParams();
    if ($("importance-objective").value) q.set("objective", $("importance-objective").value);
    try {
      const body = await getJSON(`${base}/importance?${q}`);
      if (body.objectives) fillSelect($("importance-objective"), body.objectives.map((m, i) => [String(i), m]), String(body.objective));
      $("importance-reason").hidden = !body.reason;
      $("importance-reason").textContent = body.reason || "";
      await plots.draw($("importance"), body.figure);
    } catch (err) { await plots.message($("importance"), err.message); }
    $("importance").dataset.ready = "1";
  }

  // ---------------------------------------------------------------- live
  function renderSummary(summary) {
    $("study-status").textContent = summary.status;
    $("study-status").className = `badge status-${summary.status}`;
    $("trial-total").textContent = summary.total;
    const counts = Object.entries(summary.counts).sort();
    $("status-counts").replaceChildren(...counts.map(([s, n]) => el("span", { class: `badge status-${s}` }, `${s} ${n}`)));
    renderRungs(summary.rungs);
    renderReference(summary.best);
    $("best").replaceChildren(...summary.best.filter(Boolean).map((b) => {
      const span = el("span", { class: "best" }, `best ${b.metric} `);
      span.append(el("b", {}, fmtNumber(b.value)), ` (#${b.trial})`);
      return span;
    }));
  }

  // The reference panel's "best trial" column follows the summary's best (rows are rendered by the server, one
  // per objective the reference has a value for).
  function renderReference(best) {
    document.querySelectorAll("#reference-vs-best tbody tr").forEach((tr) => {
      const b = best.find((x) => x && x.metric === tr.dataset.metric);
      const cells = tr.querySelectorAll("td");
      const diff = cells[2];
      diff.className = "num difference";
      if (!b) { cells[1].textContent = "—"; diff.textContent = "—"; return; }
      const delta = b.value - Number(tr.dataset.reference);
      const verdict = delta === 0 ? "equal" : (delta < 0) === (tr.dataset.direction === "minimize") ? "better" : "worse";
      cells[1].textContent = `${fmtNumber(b.value)} (#${b.trial})`;
      diff.textContent = `${fmtNumber(delta)} (${verdict})`;
      diff.classList.add(verdict);
    });
  }

  // Successive halving: the per-rung counts, redrawn in place (rows are rendered by the server, one per rung).
  function renderRungs(rungs) {
    const table = $("rung-summary");
    if (!table || !rungs) return;
    for (const count of rungs) {
      const tr = table.querySelector(`tr[data-rung="${count.rung}"]`);
      if (!tr) continue;
      const cells = tr.querySelectorAll("td");
      const last = count.rung === rungs.length - 1;
      [count.reached, count.promoted, count.stopped].forEach((n, i) => { cells[i + 1].textContent = String(n); });
      cells[4].textContent = last ? String(count.final) : "—";
    }
  }

  async function poll() {
    try {
      const summary = await getJSON(`${base}/summary`);
      $("live").classList.remove("stale");
      $("live").title = `checked ${new Date().toLocaleTimeString()}`;
      if (summary.stamp !== state.stamp) {
        state.stamp = summary.stamp;
        state.progress = summary.progress;
        renderSummary(summary);
        await Promise.all([loadTable(), loadPareto(), loadOptuna(), loadImportance()]);
      } else if (state.progress !== null && summary.progress !== state.progress) {
        state.progress = summary.progress;  // a running trial reported an evaluation: its latest point
        await loadTable();
      } else {
        state.progress = summary.progress;
      }
    } catch (err) {
      $("live").classList.add("stale");
      $("live").title = `update failed: ${err.message}`;
    }
    window.setTimeout(poll, POLL_MS);
  }

  // ---------------------------------------------------------------- wiring
  function wireFilter(select, key) {
    select.addEventListener("change", () => {
      state.filters[key] = select.value ? `=${select.value}` : "";
      state.offset = 0;
      const input = document.querySelector(`#trials tr.filters input[data-key="${key}"]`);
      if (input) input.value = state.filters[key];
      loadTable();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    wireFilter($("status-filter"), "status");
    wireFilter($("verdict-filter"), "verdict");
    $("prev-page").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadTable(); });
    $("next-page").addEventListener("click", () => { state.offset += PAGE; loadTable(); });
    $("compare-button").addEventListener("click", () => {
      const q = new URLSearchParams();
      for (const id of state.selected) q.append("t", id);
      window.location.href = `/study/${data.id}/compare?${q}`;
    });
    $("pareto-x").addEventListener("change", loadPareto);
    $("pareto-y").addEventListener("change", loadPareto);
    $("curve-metric").addEventListener("change", loadCurves);
    $("importance-objective").addEventListener("change", loadImportance);
    $("optuna-plot").addEventListener("change", loadOptuna);
    $("optuna-objective").addEventListener("change", loadOptuna);
    showPage(data.first_page);  // embedded in the HTML: the table is usable before any request
    // The Pareto plot first; importance last (after a change of the study the server reads Optuna's trials for it).
    loadPareto().then(loadPagePlots).then(loadOptuna).then(loadImportance);
    window.setTimeout(poll, POLL_MS);
  });
})();
