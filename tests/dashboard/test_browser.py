"""The dashboard in Debian's chromium (Playwright), over a real small study. Each test keeps a screenshot
under test-artifacts/ for a person to look at."""

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from archsearch.dashboard.importance import MIN_TRIALS
from archsearch.storage.pareto import pareto_front
from archsearch.storage import Database, StudyRecord, TrialRecord
from archsearch.storage import records

from dashboard_helpers import screenshot, serving

pytestmark = pytest.mark.browser

PLOTTED = ("completed", "infeasible", "failed", "diverged", "invalid")
UNTRAINED = ("infeasible", "invalid")  # their val_loss is a placeholder for the sampler: never shown or plotted


@pytest.fixture(scope="module")
def base(study_url):
    with serving(study_url) as url:
        yield url


def _open_study(page, base, study_id):
    page.goto(f"{base}/study/{study_id}")
    page.wait_for_selector('#trials[data-ready="1"] tbody tr', state="attached")


def _column(page, key):
    return page.locator(f'#trials tbody td[data-key="{key}"]').all_inner_texts()


def _number(text):
    return None if text in ("—", "untrained") else float(text.replace(",", ""))


def _look(block):
    if block["kind"] == "attention":
        return "attention-local" if block.get("window") else "attention-global"
    return block["kind"]


def test_studies_list_shows_the_study_with_counts_and_best(page, base, stored):
    study, trials = stored
    page.goto(base + "/")
    row = page.locator("#studies tbody tr")
    assert row.count() == 1
    assert row.locator(".study-link").inner_text() == study.name
    assert row.locator("td").nth(3).inner_text().startswith(str(len(trials)))
    completed = sum(t.status == "completed" for t in trials)
    assert f"completed {completed}" in row.inner_text()
    best = min(t.objectives[0] for t in trials if t.status == "completed")
    assert f"{best:.4g}" in row.inner_text()
    screenshot(page, "studies")
    assert not page.console_errors and not page.outside_requests


def test_study_page_lists_every_trial_with_its_layer_strip(page, base, stored):
    study, trials = stored
    _open_study(page, base, study.id)
    assert [int(n.lstrip("#")) for n in _column(page, "number")] == [t.number for t in trials]
    assert _column(page, "status") == [t.status for t in trials]
    first = trials[0]
    cells = page.locator("#trials tbody tr").first.locator(".strip .cell")
    looks = {s: _look(b) for s, b in first.spec["blocks"].items()}
    assert cells.count() == len(first.pattern)
    assert [c.get_attribute("class").split("k-")[1] for c in cells.all()] == [looks[s] for s in first.pattern]
    assert _column(page, "pattern") == [t.pattern_compact or "—" for t in trials]
    page.wait_for_selector('#pareto[data-ready="1"]', state="attached")
    page.wait_for_selector("#memory .main-svg", state="attached")
    page.wait_for_selector("#curves .main-svg", state="attached")
    page.wait_for_selector('#importance[data-ready="1"]', state="attached", timeout=60_000)
    completed = [t for t in trials if t.status == "completed"]
    if len(completed) >= MIN_TRIALS:
        bars = page.evaluate("() => document.getElementById('importance').data[0].y")
        assert bars and set(bars) <= {name for t in completed for name in t.params}
    else:
        assert f"this study has {len(completed)}" in page.locator("#importance-reason").inner_text()
    screenshot(page, "study")
    assert not page.console_errors and not page.outside_requests


def test_pareto_plot_has_one_point_per_trial_with_both_values(page, base, stored):
    study, trials = stored
    _open_study(page, base, study.id)
    page.wait_for_selector('#pareto[data-ready="1"] .scatterlayer', state="attached")
    with_values = [t for t in trials if t.status in PLOTTED and t.status not in UNTRAINED and t.objectives
                   and None not in t.objectives[:2]]
    feasible = [t for t in with_values if t.status == "completed" and t.fits is not False]
    directions = tuple(o["direction"] for o in study.objectives)
    front = pareto_front([tuple(t.objectives[:2]) for t in feasible], directions)
    assert page.locator("#pareto .scatterlayer path.point").count() == len(with_values)
    by_trace = page.evaluate("""() => Object.fromEntries(
        document.getElementById('pareto').data.map(t => [t.meta, t.x.length]))""")
    assert by_trace["front"] == len(front) >= 1
    assert by_trace["feasible"] == len(feasible) - len(front)
    assert by_trace["infeasible"] == sum(t.status == "infeasible" for t in with_values)
    assert by_trace["failed"] == sum(t.status in ("failed", "diverged", "invalid") for t in with_values)
    screenshot(page, "pareto")


def test_plotly_loads_only_once_a_plot_scrolls_into_view(page, base, stored):
    """plotly.js is one long task to evaluate; it must not block the table while the plots are out of sight."""
    study, _ = stored
    page.set_viewport_size({"width": 1400, "height": 300})
    _open_study(page, base, study.id)
    page.wait_for_timeout(1500)  # ample time for an eager load to have happened
    assert page.evaluate("() => typeof window.Plotly") == "undefined"
    assert not page.locator('#pareto[data-ready="1"]').count()
    page.locator("#pareto").scroll_into_view_if_needed()
    page.wait_for_selector('#pareto[data-ready="1"] .scatterlayer', state="attached")
    assert page.evaluate("() => typeof window.Plotly") == "object"


def _held(page, pattern):
    """Requests matching `pattern` are kept waiting (in the returned list) until the test continues them."""
    routes = []
    page.route(pattern, lambda route: routes.append(route))
    return routes


def _until(page, condition, what, timeout_ms=10_000):
    for _ in range(timeout_ms // 50):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sort_waiting_for_the_server_keeps_the_plots_from_drawing(page, base, stored):
    """Drawing a plot is a long task during which clicks wait: plots are drawn only once no table request is in
    flight, so the answer to a sort clicked while the plots load is shown first."""
    study, _ = stored
    pareto = _held(page, "**/api/study/*/pareto*")
    _open_study(page, base, study.id)
    _until(page, lambda: pareto, "the Pareto request")
    trials = _held(page, "**/api/study/*/trials*")
    page.locator('#trials th[data-key="obj:0"]').click()
    _until(page, lambda: trials, "the sort's request")
    pareto[0].continue_()
    page.wait_for_timeout(1500)  # ample time for the Pareto plot to be drawn, had it not waited
    assert not page.locator('#pareto[data-ready="1"]').count()
    page.unroute("**/api/study/*/trials*")
    trials[0].continue_()
    page.wait_for_selector('#trials[data-sort="obj:0:asc"]', state="attached")
    page.wait_for_selector('#pareto[data-ready="1"] .scatterlayer', state="attached")
    assert not page.console_errors


def test_clicking_a_heading_sorts_both_ways(page, base, stored):
    study, trials = stored
    _open_study(page, base, study.id)
    page.locator('#trials th[data-key="obj:0"]').click()
    page.wait_for_selector('#trials[data-sort="obj:0:asc"]', state="attached")
    values = [_number(v) for v in _column(page, "obj:0")]
    present = [v for v in values if v is not None]
    assert present == sorted(present) and values[:len(present)] == present  # missing values last
    shown = [t for t in trials if t.objectives and t.status not in UNTRAINED]  # untrained: no loss, listed last
    expected = sorted(shown, key=lambda t: t.objectives[0])
    numbers = [int(n.lstrip("#")) for n in _column(page, "number")]
    assert numbers[:len(expected)] == [t.number for t in expected]
    page.locator('#trials th[data-key="obj:0"]').click()
    page.wait_for_selector('#trials[data-sort="obj:0:desc"]', state="attached")
    values = [_number(v) for v in _column(page, "obj:0") if v not in ("—", "untrained")]
    assert values == sorted(values, reverse=True)
    page.wait_for_selector("#curves .main-svg", state="attached")
    screenshot(page, "sorted")


def test_status_filter_keeps_only_that_status(page, base, stored):
    study, trials = stored
    _open_study(page, base, study.id)
    page.select_option("#status-filter", "infeasible")
    page.wait_for_function("() => document.querySelector('#table-info').textContent.includes('matching')")
    assert set(_column(page, "status")) == {"infeasible"}
    assert len(_column(page, "status")) == sum(t.status == "infeasible" for t in trials)


def test_compare_view_shows_the_spec_diff(page, base, stored):
    study, trials = stored
    a, b = next((x, y) for x in trials for y in trials if x.spec and y.spec and x.spec_hash != y.spec_hash)
    _open_study(page, base, study.id)
    for trial in (a, b):
        page.locator(f'#trials tbody tr[data-id="{trial.id}"] input.pick').check()
    page.locator("#compare-button").click()
    page.wait_for_url(re.compile(r"/compare\?"))
    page.wait_for_selector("#compare-curves .main-svg", state="attached")
    headers = page.locator("#spec-diff thead th").all_inner_texts()
    assert headers == ["field", f"#{a.number}", f"#{b.number}"]
    shown = page.locator("#spec-diff tbody tr.differs")
    assert shown.count() >= 1
    for row in shown.all():
        path, left, right = row.locator("td").all_inner_texts()
        value_a, value_b = _at(a.spec, path), _at(b.spec, path)
        assert value_a != value_b
        assert left == _shown(value_a) and right == _shown(value_b)
    assert page.locator("#spec-diff tbody tr.same").first.is_hidden()
    screenshot(page, "compare")
    assert not page.console_errors


def _at(spec, path):
    node = spec
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _shown(value):
    import json

    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


HOSTILE = '<b id="bold">x</b><img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def test_stored_html_and_script_are_shown_as_text(page, study_copy):
    with Database(study_copy) as db:
        hostile = records.ensure_study(db, name=HOSTILE, space_hash="h", study_file={"name": HOSTILE},
                                       objectives=[{"metric": "val_loss", "direction": "minimize"}],
                                       n_trials_target=1, archsearch_version="test")
        trial = records.start_trial(db, study_id=hostile.id, optuna_trial_id=10**6, number=0,
                                    params={"d_model": HOSTILE}, retry_of=None, worker="w")
        records.update_trial(db, trial, status="failed", error=HOSTILE, objectives=[1.0], fits=True)
    with serving(study_copy) as url:
        page.goto(url + "/")
        link = page.locator(".study-link", has_text="window.__xss")
        assert link.inner_text() == HOSTILE
        page.goto(f"{url}/study/{hostile.id}")
        page.wait_for_selector('#trials[data-ready="1"] tbody tr', state="attached")
        assert page.locator("#study-name").inner_text() == HOSTILE
        assert page.locator(f'#trials td[data-key="param:d_model"]').inner_text() == HOSTILE
        page.goto(f"{url}/study/{hostile.id}/compare?t={trial}")
        assert page.locator("h1").inner_text().startswith(HOSTILE)
        assert page.evaluate("window.__xss") is None
        assert page.locator("#bold").count() == 0  # the <b> never became an element
        screenshot(page, "escaped")


def test_the_page_follows_a_running_study_without_reload(page, study_copy, stored):
    study, trials = stored
    with serving(study_copy) as url:
        _open_study(page, url, study.id)
        page.evaluate("window.__sameDocument = true")
        with Database(study_copy) as db:
            records.start_trial(db, study_id=study.id, optuna_trial_id=10**6, number=len(trials), params={},
                                retry_of=None, worker="w")
        page.wait_for_selector(f'#trials tbody tr[data-number="{len(trials)}"]', state="attached", timeout=20_000)
        assert page.locator("#trial-total").inner_text() == str(len(trials) + 1)
        assert page.locator("#study-status").inner_text() == "running"
        assert page.evaluate("window.__sameDocument") is True
        screenshot(page, "live")


def test_a_study_that_does_not_exist_is_a_clear_page(page, base):
    response = page.goto(base + "/study/424242")
    assert response.status == 404
    assert "study 424242 does not exist" in page.locator("#error-message").inner_text()
    screenshot(page, "not_found")


def test_ablation_table_shows_means_and_intervals(page, ablation_url):
    from archsearch.storage import AblationRecord

    with Database(ablation_url) as db, Session(db.engine) as session:
        ablation = session.scalars(sa.select(AblationRecord)).one()
        summary, name = ablation.summary, ablation.name
    with serving(ablation_url) as url:
        page.goto(url + "/")
        assert "no study yet" in page.locator("main").inner_text()
        page.locator("#ablations a", has_text=name).click()
        rows = page.locator("#ablation-summary tbody tr")
        assert rows.count() == len(summary)
        for row, cell in zip(rows.all(), summary):
            texts = row.locator("td").all_inner_texts()
            assert texts[0].startswith(cell["cell"]) and texts[1] == str(cell["n"])
            assert texts[2] == f"{cell['mean']:.4g} ± {cell['ci95']:.4g}"
            if cell["is_base"]:
                assert texts[3] == "—"
            else:
                assert texts[3].startswith(f"{cell['diff']['mean']:.4g} ± {cell['diff']['ci95']:.4g}")
        screenshot(page, "ablation")
        assert not page.console_errors


def test_local_and_global_attention_differ_and_untrained_trials_say_so(page, base, stored):
    study, trials = stored
    _open_study(page, base, study.id)
    colour = lambda selector: page.eval_on_selector(selector, "e => getComputedStyle(e).backgroundColor")
    legend = ".toolbar .legend .cell.k-attention-{}"
    assert colour(legend.format("local")) != colour(legend.format("global"))
    untrained = {t.number for t in trials if t.status in UNTRAINED}
    assert untrained
    for row in page.locator("#trials tbody tr").all():
        text = row.locator('td[data-key="obj:0"]').inner_text()
        assert (text == "untrained") == (int(row.get_attribute("data-number")) in untrained)
    screenshot(page, "study_glance")


def test_the_single_trial_page_shows_parameters_and_the_spec_against_the_base(page, base, stored):
    study, trials = stored
    trial = next(t for t in trials if t.spec and t.params and t.status == "completed")
    page.goto(f"{base}/study/{study.id}/compare?t={trial.id}")
    page.wait_for_selector("#compare-curves .main-svg", state="attached")
    page.wait_for_selector("#compare-memory .main-svg", state="attached")
    for name, value in trial.params.items():
        row = page.locator("#compare-summary tr.param", has=page.locator("th", has_text=name)).first
        assert row.locator("td").inner_text() == str(value)
    assert page.locator("#spec-diff thead th").all_inner_texts() == ["field", "base", f"#{trial.number}"]
    assert page.locator("#spec-diff tbody tr.same").first.is_visible()  # the whole spec, equal fields too
    assert page.locator("#spec-diff tbody tr.differs").count() >= 1
    assert "layers layers" not in page.locator("#compare-summary").inner_text()
    budget = page.evaluate("() => document.getElementById('compare-memory').layout.shapes.length")
    assert budget == 1
    screenshot(page, "trial")
    assert not page.console_errors


def test_three_trials_compare_without_cutting_the_last_column(page, base, stored):
    study, trials = stored
    chosen = [t for t in trials if t.spec][:3]
    page.set_viewport_size({"width": 1280, "height": 4000})
    page.goto(f"{base}/study/{study.id}/compare?" + "&".join(f"t={t.id}" for t in chosen))
    page.wait_for_selector("#compare-curves .main-svg", state="attached")
    width = page.evaluate("() => document.documentElement.clientWidth")
    for selector in ("#compare-summary thead th:last-child", "#spec-diff thead th:last-child"):
        box = page.locator(selector).bounding_box()
        assert box["x"] + box["width"] <= width, selector
    screenshot(page, "compare_three")


def test_optunas_plots_are_drawn(page, base, stored):
    study, _ = stored
    _open_study(page, base, study.id)
    page.wait_for_selector('#optuna[data-ready="1"] .main-svg', state="attached", timeout=60_000)
    page.select_option("#optuna-plot", "slice")
    page.wait_for_function("() => document.getElementById('optuna').layout.title.text.includes('Slice')")
    screenshot(page, "optuna_plots")
    assert not page.console_errors


def test_the_ablation_chart_is_drawn(page, ablation_url):
    from archsearch.storage import AblationRecord

    with Database(ablation_url) as db, Session(db.engine) as session:
        ablation_id = session.scalars(sa.select(AblationRecord.id)).one()
    with serving(ablation_url) as url:
        page.goto(f"{url}/ablation/{ablation_id}")
        page.wait_for_selector('#ablation-chart[data-ready="1"] .main-svg', state="attached")
        points = page.evaluate("() => document.getElementById('ablation-chart').data[0].x.length")
        assert points == page.locator("#ablation-summary tbody tr").count() - 1  # every cell but the base
        screenshot(page, "ablation_chart")
        assert not page.console_errors
