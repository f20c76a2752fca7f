"""The dashboard over a real small study, through HTTP: pages, JSON, errors, and what it refuses."""

import json
import re

import pytest
from starlette.testclient import TestClient

from archsearch.dashboard import create_app


@pytest.fixture(scope="module")
def client(study_url):
    return TestClient(create_app(study_url), raise_server_exceptions=False)


def test_the_trials_json_holds_every_stored_trial(client, stored):
    study, trials = stored
    body = client.get(f"/api/study/{study.id}/trials?limit=500").json()
    assert body["total"] == len(trials) == body["matching"]
    assert [r["number"] for r in body["rows"]] == [t.number for t in trials]
    for row, trial in zip(body["rows"], trials):
        assert row["status"] == trial.status and row["n_params"] == trial.n_params
        assert [c for c, _, _ in row["strip"]] == list(trial.pattern or "")
        kinds = {s: b["kind"] for s, b in (trial.spec or {}).get("blocks", {}).items()}
        assert [k for _, k, _ in row["strip"]] == [kinds[s] for s in trial.pattern or ""]
        assert row["pattern"] == trial.pattern_compact


def test_filters_and_sorting_through_the_api(client, stored):
    study, trials = stored
    infeasible = [t.number for t in trials if t.status == "infeasible"]
    body = client.get(f"/api/study/{study.id}/trials", params={"f.status": "=infeasible"}).json()
    assert [r["number"] for r in body["rows"]] == infeasible and body["matching"] == len(infeasible)
    body = client.get(f"/api/study/{study.id}/trials", params={"sort": "n_params", "desc": "1"}).json()
    expected = sorted((t for t in trials if t.n_params is not None), key=lambda t: -t.n_params)
    assert [r["number"] for r in body["rows"]][:len(expected)] == [t.number for t in expected]
    bad = client.get(f"/api/study/{study.id}/trials", params={"f.n_params": "lots"})
    assert bad.status_code == 400 and "filter on params" in bad.json()["error"]


def test_every_response_forbids_inline_script_and_only_get_is_allowed(client, stored):
    study, _ = stored
    for url in ["/", f"/study/{study.id}", f"/api/study/{study.id}/summary", "/static/study.js"]:
        response = client.get(url)
        assert response.status_code == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        for method in ("post", "put", "delete", "patch"):
            assert getattr(client, method)(url).status_code == 405, (method, url)


def test_plotly_basic_bundle_is_served_with_its_licence_and_matches_the_plotly_package(client):
    """The page draws with plotly.js's basic bundle; the Python plotly package writes the figures for its own
    plotly.js, so the two must share a major version (a plotly upgrade that moves it needs a new bundle)."""
    from plotly.offline import get_plotlyjs_version

    from archsearch.dashboard.assets import plotly_js_path

    response = client.get("/assets/plotly-basic.min.js")
    assert response.status_code == 200 and response.content == plotly_js_path().read_bytes()
    assert response.headers["content-type"].startswith("text/javascript")
    version = re.search(rb"plotly\.js \(basic - minified\) v(\d+)\.", response.content[:300])
    assert version and int(version.group(1)) == int(get_plotlyjs_version().split(".")[0])
    licence = plotly_js_path().with_name(plotly_js_path().name + ".LICENSE.txt").read_text()
    assert "MIT License" in licence and "Plotly" in licence


def test_every_figure_uses_only_trace_types_of_the_served_bundle():
    from archsearch.dashboard.assets import PLOTLY_TRACE_TYPES
    from archsearch.dashboard.figures import (CATEGORIES, PlotPoint, curves_figure, importance_figure,
                                              memory_figure, pareto_figure, side_by_side_curves)

    points = [PlotPoint(i, i, float(i), float(-i), category) for i, category in enumerate(CATEGORIES)]
    curves = {"#1": [(50.0, 2.0), (100.0, 1.5)], "#2": []}
    figures = [pareto_figure(points, "val_loss", "params"), memory_figure(["#1"], [{"weights": 1e6}]),
               curves_figure(curves, "val_loss"), side_by_side_curves(curves, "val_loss"),
               importance_figure({"d_model": 0.7, "repeats": 0.3}, "val_loss")]
    types = {trace.get("type", "scatter") for figure in figures for trace in figure["data"]}
    assert types <= PLOTLY_TRACE_TYPES, types - PLOTLY_TRACE_TYPES


def test_pages_reference_no_outside_asset(client, stored):
    study, trials = stored
    for url in ["/", f"/study/{study.id}", f"/study/{study.id}/compare?t={trials[0].id}&t={trials[1].id}"]:
        html = client.get(url).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources and all(s.startswith("/") for s in sources), sources


@pytest.mark.parametrize("url, status, message", [
    ("/study/99999", 404, "study 99999 does not exist"),
    ("/api/study/99999/trials", 404, "study 99999 does not exist"),
    ("/study/1/compare?t=99999", 404, "trial 99999 in study 1 does not exist"),
    ("/study/1/compare?t=abc", 400, "every t= must be a trial id"),
    ("/study/1/compare", 400, "choose trials"),
    ("/api/study/1/pareto?x=nope", 400, "axis 'nope' is not one of"),
    ("/no/such/page", 404, "does not exist"),
])
def test_bad_ids_give_a_clear_page_never_a_traceback(client, url, status, message):
    response = client.get(url)
    assert response.status_code == status
    assert message in response.text and "Traceback" not in response.text


def test_the_study_page_embeds_its_data_as_inert_json(client, stored):
    study, trials = stored
    html = client.get(f"/study/{study.id}").text
    blob = re.search(r'<script type="application/json" id="study-data">(.*?)</script>', html, re.S).group(1)
    data = json.loads(blob)
    assert data["id"] == study.id and data["first_page"]["total"] == len(trials)
