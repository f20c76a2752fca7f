"""Issue 13 point 6: the dashboard never answers 500 on data archsearch writes itself.

Non-finite objective values (an infeasible trial's +inf `peak_memory_bytes`) become JSON null in every JSON
route, in the study page's embedded JSON and in `archsearch results export --format json`; the HTML shows them
without crashing. Ids beyond SQL's integer range, or otherwise not ids, give 404/400, never 500.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from archsearch.dashboard import create_app
from archsearch.storage import Database, TrialRecord
from archsearch.storage.export import export

NONFINITE = [math.inf, -math.inf, math.nan]


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def nonfinite_url(study_copy):
    """The small study with three completed trials whose objectives are +inf, -inf and nan, stored by
    archsearch.storage itself (so exactly as a study run would write them)."""
    with Database(study_copy) as db, Session(db.engine) as session:
        trials = list(session.scalars(sa.select(TrialRecord).order_by(TrialRecord.number)))
        for trial, value in zip(trials, NONFINITE):
            trial.objectives = [value, value]
            trial.status = "completed"
            trial.fits = value != math.inf
            trial.peak_memory_bytes = value
            trial.tokens_per_s = value
        session.commit()
        ids = [t.id for t in trials]
        study_id = trials[0].study_id
    return study_copy, study_id, ids


def test_every_page_and_json_route_answers_with_strict_json(nonfinite_url):
    url, study_id, ids = nonfinite_url
    client = TestClient(create_app(url), raise_server_exceptions=False)
    ids_param = ",".join(map(str, ids[:5]))
    for path in [f"/api/study/{study_id}/summary", f"/api/study/{study_id}/trials",
                 f"/api/study/{study_id}/trials?sort=obj:0&desc=1", f"/api/study/{study_id}/trials?sort=memory",
                 f"/api/study/{study_id}/pareto", f"/api/study/{study_id}/memory?ids={ids_param}",
                 f"/api/study/{study_id}/curves?ids={ids_param}", f"/api/study/{study_id}/importance"]:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        _strict(response.text)
    rows = _strict(client.get(f"/api/study/{study_id}/trials?limit=500").text)["rows"]
    by_id = {row["id"]: row for row in rows}
    for trial_id in ids[:3]:
        assert by_id[trial_id]["values"] == [None, None]
    summary = _strict(client.get(f"/api/study/{study_id}/summary").text)
    for best in summary["best"]:
        assert best is None or math.isfinite(best["value"])
    for path in ["/", f"/study/{study_id}", f"/study/{study_id}/compare?" + "&".join(f"t={i}" for i in ids[:3])]:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
    html = client.get(f"/study/{study_id}").text
    blob = re.search(r'<script type="application/json" id="study-data">(.*?)</script>', html, re.S).group(1)
    _strict(blob)
    compare = client.get(f"/study/{study_id}/compare?t={ids[0]}").text
    assert "inf" in compare


def test_export_json_is_strict_json(nonfinite_url):
    url, _, ids = nonfinite_url
    with Database(url) as db:
        rows = _strict(export(db, "json", None))
    by_number = sorted(rows, key=lambda r: r["number"])
    for row in by_number[:3]:
        assert row["objectives"] == [None, None] and row["peak_memory_bytes"] is None
    done = subprocess.run([sys.executable, "-m", "archsearch.cli", "results", "export", "--storage", url,
                           "--format", "json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Infinity" not in done.stdout and "NaN" not in done.stdout
    _strict(done.stdout[done.stdout.index("["):])


ID_ROUTES = ["/study/{}", "/study/{}/compare?t=1", "/ablation/{}", "/api/study/{}/summary", "/api/study/{}/trials",
             "/api/study/{}/pareto", "/api/study/{}/memory", "/api/study/{}/curves", "/api/study/{}/importance"]
TRIAL_ID_ROUTES = ["/study/{study}/compare?t={}", "/study/{study}/compare?t=1&t={}",
                   "/api/study/{study}/memory?ids={}", "/api/study/{study}/curves?ids=1,{}"]

bad_ids = st.one_of(
    st.integers(min_value=2**63 - 2, max_value=10**40).map(str),
    st.integers(max_value=0).map(str),
    st.just("99999999999999999999999"), st.just("9223372036854775808"), st.just("0"),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_~-]{0,10}", fullmatch=True),
)


@pytest.fixture(scope="module")
def plain_client(study_url):
    return TestClient(create_app(study_url), raise_server_exceptions=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=bad_ids, route=st.sampled_from(ID_ROUTES))
def test_garbage_study_and_ablation_ids_never_give_500(plain_client, raw, route):
    response = plain_client.get(route.format(raw))
    assert response.status_code in (400, 404), (route, raw, response.status_code, response.text[:300])
    assert "Traceback" not in response.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=bad_ids, route=st.sampled_from(TRIAL_ID_ROUTES))
def test_garbage_trial_ids_never_give_500(plain_client, raw, route):
    study_id = _strict(plain_client.get("/api/study/1/summary").text)["id"]
    response = plain_client.get(route.format(raw, study=study_id))
    assert response.status_code in (200, 400, 404), (route, raw, response.status_code, response.text[:300])
    assert response.status_code != 200 or route.startswith("/api/"), (route, raw)
    assert "Traceback" not in response.text


@pytest.mark.parametrize("path", ["/study/99999999999999999999999", "/api/study/99999999999999999999999/summary",
                                  "/ablation/9223372036854775808"])
def test_a_huge_id_is_a_clear_404(plain_client, path):
    response = plain_client.get(path)
    assert response.status_code == 404 and "does not exist" in response.text
