"""The dashboard read at a glance (issue 18 point 5), over the real small study through HTTP: local and global
attention told apart, the pattern as text, the single-trial page's parameters and spec against the base, the
memory budget line, curve styles that never repeat, untrained trials shown as such, a running trial's latest
evaluation, the ablation chart and Optuna's own plots."""

import json
import re

import optuna
import pytest
from starlette.testclient import TestClient

from archsearch.dashboard import create_app
from archsearch.dashboard.assets import PLOTLY_TRACE_TYPES
from archsearch.dashboard.specdiff import spec_diff
from archsearch.dashboard.figures import CURVE_COLOURS, CURVE_DASHES, curves_figure
from archsearch.dashboard.templating import fmt_bytes
from archsearch.dashboard.views import ANALYTIC_METRICS
from archsearch.storage import Database, records

MEMORY_KEY = "budget:a10g@2Mx16"


@pytest.fixture(scope="module")
def client(study_url):
    return TestClient(create_app(study_url), raise_server_exceptions=False)


def _rows(client, study):
    return {r["id"]: r for r in client.get(f"/api/study/{study.id}/trials?limit=500").json()["rows"]}


def _figure(html, element_id):
    return json.loads(re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html,
                                re.S).group(1))


def test_local_and_global_attention_have_their_own_look_and_the_pattern_is_text(client, stored):
    study, trials = stored
    rows = _rows(client, study)
    looks = set()
    for trial in trials:
        blocks = (trial.spec or {}).get("blocks", {})
        expected = []
        for symbol in trial.pattern or "":
            block = blocks[symbol]
            kind = block["kind"]
            expected.append(("attention-local" if block.get("window") else "attention-global")
                            if kind == "attention" else kind)
        assert [look for _, _, look in rows[trial.id]["strip"]] == expected
        assert rows[trial.id]["pattern"] == trial.pattern_compact
        looks.update(expected)
    assert {"attention-local", "attention-global"} <= looks  # the study holds both, so both were checked
    body = client.get(f"/api/study/{study.id}/trials?limit=500").json()
    assert {"key": "pattern", "label": "pattern", "numeric": False} in body["columns"]
    some = next(t for t in trials if t.pattern_compact)
    part = some.pattern_compact[:3]
    filtered = client.get(f"/api/study/{study.id}/trials", params={"f.pattern": part, "limit": 500}).json()
    assert [r["number"] for r in filtered["rows"]] == [t.number for t in trials
                                                      if part.lower() in (t.pattern_compact or "").lower()]
    css = client.get("/static/style.css").text
    colours = {name: re.search(rf"--{name}: (#[0-9a-f]+)", css).group(1) for name in ("attention", "attention-local")}
    assert colours["attention"] != colours["attention-local"]
    legend = client.get(f"/study/{study.id}").text
    assert "k-attention-local" in legend and "attention (local window)" in legend


def test_untrained_trials_show_no_placeholder_and_are_not_plotted_as_trained(client, stored):
    study, trials = stored
    metrics = [o["metric"] for o in study.objectives]
    untrained = [t for t in trials if t.status in ("infeasible", "invalid")]
    assert untrained and metrics[0] == "val_loss"
    rows = _rows(client, study)
    for t in untrained:
        row = rows[t.id]
        assert row["trained"] is False
        assert row["values"] == [v if m in ANALYTIC_METRICS else None for m, v in zip(metrics, t.objectives)]
    for t in trials:
        if t.status == "completed":
            assert rows[t.id]["trained"] is True and rows[t.id]["values"] == t.objectives
    pareto = client.get(f"/api/study/{study.id}/pareto", params={"x": "obj:0", "y": "obj:1"}).json()
    plotted = {i for trace in pareto["figure"]["data"] for i in trace["customdata"]}
    assert not plotted & {t.id for t in untrained}
    sizes = client.get(f"/api/study/{study.id}/pareto", params={"x": "n_params", "y": "memory"}).json()
    infeasible = next(tr for tr in sizes["figure"]["data"] if tr["meta"] == "infeasible")
    assert set(infeasible["customdata"]) == {t.id for t in trials if t.status == "infeasible"}  # real sizes
    page = client.get(f"/study/{study.id}/compare", params={"t": untrained[0].id}).text
    assert "never trained" in page and "untrained" in page and f"{untrained[0].objectives[0]:.4g}" not in page


def test_the_single_trial_page_shows_its_parameters_and_its_spec_against_the_base(client, stored):
    study, trials = stored
    trial = next(t for t in trials if t.spec and t.params)
    html = client.get(f"/study/{study.id}/compare", params={"t": trial.id}).text
    assert ">sampled parameters</th>" in html
    for name, value in trial.params.items():
        cell = rf"<th>{re.escape(name)}</th><td>{re.escape(str(value))}</td>"
        assert re.search(cell, html), name
    count = re.search(r'id="diff-count">(\d+) of (\d+) fields differ from the study\'s base', html)
    base = study.study_file["base"]
    assert count, re.search(r'id="diff-count">[^<]*', html).group(0)
    expected = spec_diff([base, trial.spec])
    assert (int(count.group(1)), int(count.group(2))) == (sum(r.differs for r in expected), len(expected))
    assert int(count.group(1)) >= 1 and int(count.group(2)) >= 20
    headers = re.search(r'<table class="grid diff show-same" id="spec-diff">\s*<thead><tr>(.*?)</tr>', html, re.S)
    assert re.findall(r"<th>(.*?)</th>", headers.group(1)) == ["field", "base", f"#{trial.number}"]
    assert "layers layers" not in html and "layers:" not in html
    assert f"<code>{trial.pattern_compact}</code>" in html


def test_the_memory_chart_has_the_budget_line_in_the_tables_unit(client, stored):
    study, trials = stored
    shown = [t for t in trials if t.budget and MEMORY_KEY in t.budget and "breakdown" in t.budget[MEMORY_KEY]]
    body = client.get(f"/api/study/{study.id}/memory", params={"ids": ",".join(str(t.id) for t in shown)}).json()
    figure = body["figure"]
    budget = shown[0].budget[MEMORY_KEY]["budget_bytes"]
    largest = max([budget] + [t.budget[MEMORY_KEY]["total_bytes"] for t in shown])
    unit = fmt_bytes(largest).split()[1]
    scale = {"KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}[unit]
    assert figure["layout"]["yaxis"]["title"]["text"] == f"memory ({unit})"
    lines = [s for s in figure["layout"]["shapes"] if s["type"] == "line"]
    assert [s["y0"] for s in lines] == [pytest.approx(budget / scale)]
    assert any(a["text"].startswith("budget ") for a in figure["layout"]["annotations"])
    for trace in figure["data"]:
        for label, y in zip(trace["x"], trace["y"]):
            trial = next(t for t in shown if f"#{t.number}" == label)
            assert y == pytest.approx(trial.budget[MEMORY_KEY]["breakdown"].get(trace["name"], 0.0) / scale)


def test_sixty_curves_never_share_a_colour_and_dash():
    figure = curves_figure({f"#{i}": [(1.0, 1.0)] for i in range(60)})
    styles = [(t["line"]["color"], t["line"]["dash"]) for t in figure["data"]]
    assert len(set(styles)) == 60 and len(CURVE_COLOURS) * len(CURVE_DASHES) >= 60
    assert len(set(CURVE_COLOURS)) == len(CURVE_COLOURS)


def test_a_running_trial_shows_its_latest_evaluation(study_copy, stored):
    study, trials = stored
    storage = optuna.storages.RDBStorage(study_copy)
    optuna_study = optuna.load_study(study_name=study.name, storage=storage)
    running = optuna_study.ask()
    storage.set_trial_user_attr(running._trial_id, "curve_metric", "val_loss")
    for step, value in ((2, 4.0), (4, 3.5)):
        storage.set_trial_intermediate_value(running._trial_id, step, value)
    with Database(study_copy) as db:
        row = records.start_trial(db, study_id=study.id, optuna_trial_id=running._trial_id, number=running.number,
                                  params={}, retry_of=None, worker="w")
    client = TestClient(create_app(study_copy), raise_server_exceptions=False)
    before = client.get(f"/api/study/{study.id}/summary").json()["progress"]
    shown = _rows(client, study)[row]
    assert shown["status"] == "running" and shown["latest"] == {"metric": "val_loss", "step": 4, "value": 3.5}
    assert all(r["latest"] is None for i, r in _rows(client, study).items() if i != row)
    storage.set_trial_intermediate_value(running._trial_id, 6, 3.25)
    assert client.get(f"/api/study/{study.id}/summary").json()["progress"] != before  # the page redraws
    curves = client.get(f"/api/study/{study.id}/curves", params={"ids": str(row), "metric": "val_loss"}).json()
    assert curves["trials"] == 1 and curves["figure"]["data"][0]["y"] == [4.0, 3.5, 3.25]
    page = client.get(f"/study/{study.id}/compare", params={"t": row}).text
    assert "val_loss 3.25 @ step 6" in page
    storage.engine.dispose()


def test_the_ablation_page_charts_each_cells_effect_with_its_interval(ablation_url):
    from sqlalchemy.orm import Session
    import sqlalchemy as sa

    from archsearch.storage import AblationRecord

    with Database(ablation_url) as db, Session(db.engine) as session:
        ablation = session.scalars(sa.select(AblationRecord)).one()
        summary, ablation_id = ablation.summary, ablation.id
    client = TestClient(create_app(ablation_url), raise_server_exceptions=False)
    html = client.get(f"/ablation/{ablation_id}").text
    figure = _figure(html, "ablation-figure")
    cells = [c for c in summary if not c["is_base"]]
    trace = figure["data"][0]
    assert trace["y"] == [c["cell"] for c in cells]
    assert trace["x"] == [pytest.approx(c["diff"]["mean"]) for c in cells]
    assert trace["error_x"]["array"] == [pytest.approx(c["diff"]["ci95"] or 0.0) for c in cells]
    assert '<script src="/static/ablation.js" defer></script>' in html
    assert client.get("/static/ablation.js").status_code == 200


@pytest.mark.parametrize("plot", ["history", "slice"])
def test_optunas_own_plots_of_the_completed_trials(client, stored, plot):
    study, trials = stored
    completed = [t for t in trials if t.status == "completed"]
    for index, objective in enumerate(study.objectives):
        body = client.get(f"/api/study/{study.id}/optuna", params={"plot": plot, "objective": index}).json()
        assert body["reason"] == "" and body["objectives"] == [o["metric"] for o in study.objectives]
        data = body["figure"]["data"]
        assert {trace.get("type", "scatter") for trace in data} <= PLOTLY_TRACE_TYPES
        if plot == "history":
            points = sorted((x, y) for trace in data if trace.get("mode") == "markers"
                            for x, y in zip(trace["x"], trace["y"]))
            expected = sorted((t.number, t.objectives[index]) for t in completed)
            assert [x for x, _ in points] == [n for n, _ in expected]  # the trials' own numbers
            assert [y for _, y in points] == pytest.approx([v for _, v in expected])
        else:
            with_params = [t for t in completed if t.params]
            names = {name for t in with_params for name in t.params}
            shown = [trace for trace in data if trace.get("y") is not None and len(trace["y"])]
            assert len(shown) == len(names)  # one panel per parameter, each with every trial that set it
            assert sorted(len(trace["y"]) for trace in shown) == sorted(
                sum(name in t.params for t in with_params) for name in names)
    bad = client.get(f"/api/study/{study.id}/optuna", params={"plot": "nope"})
    assert bad.status_code == 400 and "allowed: history, slice" in bad.json()["error"]


def test_analytic_metrics_match_the_studies_table():
    from archsearch.studies.objectives import ANALYTIC

    assert tuple(ANALYTIC) == ANALYTIC_METRICS
