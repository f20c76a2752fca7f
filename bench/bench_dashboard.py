"""Dashboard benchmark: a database of 10,000 trials; how long until the study page's table is usable?

The database is written through archsearch.storage's models (our tables) and Optuna's storage (its tables),
with real specs and real analytic budget reports; only the training results are drawn from a formula.
The times are measured in Debian's chromium through Playwright, on the page's own clock from navigation start:
until the trials table holds its first page of rows, until a click on a heading (sent as soon as the rows show)
reaches the page, until that click has re-sorted the table (the page is interactive), and until the Pareto plot
of all trials is drawn. The click is one mouse press and release sent at the heading; its reaching the page's
handlers and the re-sort are noted by listeners the benchmark adds to the page (a click listener in the capture
phase, a MutationObserver on the table's data-sort), so Playwright's round trips are not counted; "click to
sorted" runs from the moment the click is sent. Each load is a fresh browser context (no HTTP cache).

Server side (`--server`, no browser): the server's CPU time and wall time to answer parameter importance for each
objective on a fresh server (light columns already loaded), and the latency of sort requests to the trials API
sent every 20 ms while importance for every objective is asked at once (the study page and a second page, or
the objective switched), against the same requests on an idle server.

    .venv/bin/python bench/bench_dashboard.py [--trials 10000] [--runs 5] [--db PATH] [--server]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import socket
import statistics
import threading
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STATUSES = (["completed"] * 70 + ["infeasible"] * 15 + ["failed"] * 4 + ["diverged"] * 3 + ["pruned"] * 4
            + ["invalid"] * 2 + ["stopped"] * 2)


def _spec(rng: random.Random):
    """A real, valid spec and the parameters that chose it."""
    from archsearch.spec.loader import parse_spec

    d_model = rng.choice([64, 128, 192, 256, 384])
    repeats = rng.randint(2, 8)
    unit = rng.choice(["M-M-*-", "MM*-", "M-", "M*M-", "MMM*"])
    d_state = rng.choice([16, 32, 64])
    params = {"d_model": d_model, "repeats": repeats, "unit": unit, "blocks.M.d_state": d_state}
    return params, parse_spec({
        "name": "bench", "vocab_size": 256, "d_model": d_model, "max_context": 8192,
        "pattern": f"({unit})x{repeats} M-",
        "blocks": {"M": {"kind": "mamba2", "n_heads": max(1, d_model // 32), "head_dim": 32,
                         "d_state": d_state, "n_groups": 1, "conv_kernel": 4, "chunk_size": 64},
                   "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": rng.choice([1, 2, 4]), "head_dim": 32,
                         "window": rng.choice([None, 256, 1024])},
                   "-": {"kind": "mlp", "ffn_ratio": rng.choice([2, 3, 4]), "activation": "relu2"}},
        "tie_embeddings": False})


def build_database(path: Path, n_trials: int, seed: int = 0) -> str:
    """Write a study of `n_trials` trials into a fresh SQLite file; return its URL."""
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from archsearch.checks import check_budget
    from archsearch.spec.accounting import count_parameters
    from archsearch.storage import Database, StudyRecord, TrialRecord
    from archsearch.storage.models import utcnow

    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    rng = random.Random(seed)
    db = Database(url)
    storage = db.optuna_storage()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="bench-10k", storage=storage, directions=["minimize", "minimize"])
    objectives = [{"metric": "val_loss", "direction": "minimize"}, {"metric": "n_params", "direction": "minimize"}]
    dists = {"d_model": CategoricalDistribution([64, 128, 192, 256, 384]), "repeats": IntDistribution(2, 8)}
    frozen, records = [], []
    for number in range(n_trials):
        params, spec = _spec(rng)
        status = rng.choice(STATUSES)
        report = check_budget(spec, "a10g", 4096)
        n_params = count_parameters(spec).total
        loss = 1.0 + 30.0 / math.log(n_params) + rng.gauss(0, 0.05)
        trained = status in ("completed", "pruned", "stopped", "diverged")
        steps = {"completed": 20, "pruned": 8, "stopped": 10, "diverged": 6}.get(status, 0)
        curve = [{"step": 50 * (k + 1), "val_loss": loss + 2.0 * math.exp(-k / 4) + rng.gauss(0, 0.02)}
                 for k in range(steps)]
        records.append(dict(
            number=number, status=status, params=params, spec=spec.to_dict(), spec_hash=spec.spec_hash(),
            pattern=spec.pattern_string, pattern_compact=spec.pattern, n_params=n_params,
            fits=status != "infeasible", budget={"a10g@4096": report.to_dict()},
            constraints={"a10g@4096": float(report.total_bytes - report.budget_bytes)},
            objectives=[loss, float(n_params)] if status == "completed" else None,
            metrics={"val_loss": loss} if trained else None, curve=curve or None,
            backends={"ssd_scan": "naive", "attention": "sdpa"} if trained else None,
            precision="float32" if trained else None, tokens_per_s=rng.uniform(2e3, 2e4) if trained else None,
            error={"failed": "out of memory", "diverged": "loss is nan at step 300"}.get(status),
            wall_time_s=rng.uniform(5, 60), finished_at=utcnow()))
        if status == "completed":
            frozen.append(create_trial(state=TrialState.COMPLETE, values=[loss, float(n_params)],
                                       params={"d_model": params["d_model"], "repeats": params["repeats"]},
                                       distributions=dists))
    study.add_trials(frozen)
    optuna_ids = [t._trial_id for t in study.get_trials(deepcopy=False)]
    with db.session() as session:
        record = StudyRecord(name="bench-10k", optuna_study_id=study._study_id, space_hash="bench",
                             study_file={"name": "bench-10k"}, objectives=objectives, n_trials_target=n_trials,
                             slots_taken=n_trials, archsearch_version="bench")
        session.add(record)
        session.flush()
        completed = iter(optuna_ids)
        # Trials Optuna never saw get ids past its own, as the runner's infeasible ones would not.
        spare = iter(range(10**7, 10**7 + n_trials))
        session.add_all(TrialRecord(study_id=record.id, optuna_trial_id=next(completed) if r["status"] == "completed"
                                    else next(spare), **r) for r in records)
    db.close()
    return url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(url: str):
    import uvicorn

    from archsearch.dashboard import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(url), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the dashboard did not start in 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# Added to every page before its own scripts: when the click reached the page, when the table was re-sorted.
_CLOCKS = """
window.__bench = {click: null, sorted: null};
document.addEventListener("click", () => { if (window.__bench.click === null) window.__bench.click = performance.now(); },
                          true);
new MutationObserver(() => {
  const table = document.getElementById("trials");
  if (window.__bench.sorted === null && table && table.dataset.sort === "obj:0:asc") {
    window.__bench.sorted = performance.now();
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-sort"]});
"""


def measure(base: str, runs: int, screenshot: Path | None, click_after_ms: int = 0) -> list[dict]:
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for run in range(runs):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.add_init_script(_CLOCKS)
            page.goto(f"{base}/study/1", wait_until="commit")
            page.wait_for_selector('#trials[data-ready="1"] tbody tr', timeout=60_000)
            # Interactive: a click on a heading as soon as the rows show (or `click_after_ms` later), until the
            # table is sorted by it. The click is sent as a person's would be, one mouse press and release at
            # the heading (Playwright's locator.click first checks the element over several round trips, each
            # of which waits for the page's main thread: it would not send the click when a person does).
            box = page.locator('#trials th[data-key="obj:0"]').bounding_box()
            origin = page.evaluate("() => performance.timeOrigin")  # epoch ms of the page's navigation start
            if click_after_ms:
                page.wait_for_timeout(click_after_ms)
            sent_ms = time.time() * 1000 - origin  # on the page's clock
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_selector('#trials[data-sort="obj:0:asc"]', timeout=60_000)
            page.locator("#pareto").scroll_into_view_if_needed()  # plots load plotly.js once in view
            page.wait_for_selector('#pareto[data-ready="1"]', timeout=60_000)
            pareto_ms = page.evaluate("() => performance.now()")
            clocks = page.evaluate("() => window.__bench")
            table_ms = float(page.locator("#trials").get_attribute("data-first-shown-at"))  # the page notes it
            rows = page.locator("#trials tbody tr").count()
            if screenshot and run == runs - 1:
                page.screenshot(path=str(screenshot), full_page=True)
            results.append({"run": run, "table_ms": table_ms, "sent_ms": sent_ms, "click_ms": clocks["click"],
                            "sorted_ms": clocks["sorted"], "pareto_ms": pareto_ms, "rows": rows})
            page.close()
        browser.close()
    return results


def _get(url: str) -> float:
    """Seconds to GET `url` and read its body (it must answer 200)."""
    import urllib.request

    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        response.read()
        assert response.status == 200, (url, response.status)
    return time.perf_counter() - t0


def _sorts(base: str, n: int, until: threading.Event | None = None) -> list[float]:
    """Latencies (s) of sort requests to the trials API sent every 20 ms: `n` of them, or until `until` is set."""
    latencies: list[float] = []
    while (until is None and len(latencies) < n) or (until is not None and not until.is_set()):
        latencies.append(_get(f"{base}/api/study/1/trials?sort=obj:0&desc={len(latencies) % 2}"))
        time.sleep(0.02)
    return latencies


def measure_server(url: str, runs: int, n_objectives: int = 2) -> None:
    """Importance's server cost per objective, and sort latency while importance is computed (see the docstring).
    Each run starts a fresh server, so importance is computed as after a change of the study."""
    imp = [f"/api/study/1/importance?objective={i}" for i in range(n_objectives)]
    for run in range(runs):
        with serve(url) as base:
            _get(f"{base}/api/study/1/trials")  # the light columns: loaded once per change, not measured here
            idle = _sorts(base, 20)
            figures = []
            for path in imp:
                cpu, t0 = time.process_time(), time.perf_counter()
                _get(base + path)
                figures.append((time.process_time() - cpu, time.perf_counter() - t0))
            print(f"run {run} importance, fresh server: " + ", ".join(
                f"objective {i} {c * 1000:.0f} ms CPU / {w * 1000:.0f} ms wall" for i, (c, w) in enumerate(figures))
                  + f"; all objectives {sum(c for c, _ in figures) * 1000:.0f} ms CPU")
        with serve(url) as base:
            _get(f"{base}/api/study/1/trials")
            done = threading.Event()
            cpu, t0 = time.process_time(), time.perf_counter()
            askers = [threading.Thread(target=_get, args=(base + path,)) for path in imp]
            for t in askers:
                t.start()
            watcher = threading.Thread(target=lambda: ([t.join() for t in askers], done.set()))
            watcher.start()
            during = _sorts(base, 0, until=done)
            watcher.join()
            print(f"run {run} importance for {n_objectives} objectives asked at once: {(time.perf_counter() - t0) * 1000:.0f} "
                  f"ms wall, {(time.process_time() - cpu) * 1000:.0f} ms CPU (sort requests included); sort latency "
                  f"idle median {statistics.median(idle) * 1000:.0f} / max {max(idle) * 1000:.0f} ms, during "
                  f"median {statistics.median(during) * 1000:.0f} / max {max(during) * 1000:.0f} ms "
                  f"({len(during)} requests)")


def report(results: list[dict]) -> None:
    for r in results:
        r["click_to_sorted_ms"] = r["sorted_ms"] - r["sent_ms"]
        print(f"run {r['run']}: rows drawn {r['table_ms']:.0f} ms, click sent {r['sent_ms']:.0f} ms, reached the "
              f"page's handlers {r['click_ms']:.0f} ms, sorted {r['sorted_ms']:.0f} ms "
              f"({r['click_to_sorted_ms']:.0f} ms after the click), Pareto drawn {r['pareto_ms']:.0f} ms, "
              f"{r['rows']} rows shown")
    cold, warm = results[0], results[1:] or results
    figures = (("rows", "table_ms"), ("click sent", "sent_ms"), ("click handled", "click_ms"), ("sorted", "sorted_ms"),
               ("click to sorted", "click_to_sorted_ms"), ("Pareto", "pareto_ms"))
    print("first load (cold server cache): " + ", ".join(f"{label} {cold[key]:.0f} ms" for label, key in figures))
    for name, pick in (("median", statistics.median), ("worst", max)):
        print(f"{name} of later loads: " + ", ".join(f"{label} {pick(r[key] for r in warm):.0f} ms"
                                                     for label, key in figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", type=Path, default=Path("test-artifacts/bench_dashboard.db"))
    parser.add_argument("--reuse", action="store_true", help="keep an existing --db instead of rebuilding it")
    parser.add_argument("--click-after", default="0", metavar="MS[,MS...]",
                        help="wait this long after the rows show before clicking a heading; several values give one "
                             "set of --runs loads each (a sweep over the moments the plots load and draw)")
    parser.add_argument("--server", action="store_true",
                        help="measure the server side only (importance cost, sort latency meanwhile); no browser")
    args = parser.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    if args.reuse and args.db.is_file():
        url = f"sqlite:///{args.db}"
    else:
        t0 = time.perf_counter()
        url = build_database(args.db, args.trials, seed=0)
        print(f"built {args.trials} trials in {time.perf_counter() - t0:.1f} s -> {args.db}")
    if args.server:
        measure_server(url, args.runs)
        print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        return
    delays = [int(ms) for ms in args.click_after.split(",")]
    with serve(url) as base:
        for delay in delays:
            results = measure(base, args.runs, args.db.parent / "bench_dashboard_study.png", delay)
            if len(delays) > 1:
                print(f"--- click {delay} ms after the rows show")
            report(results)
    print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

if __name__ == "__main__":
    main()
