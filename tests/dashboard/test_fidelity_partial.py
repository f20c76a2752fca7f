"""A fidelity measurement cut short by `study fidelity --timeout` is marked on the dashboard: "partial: n of m
candidates", in the panel and the summary API; a whole one is not."""

import re

from starlette.testclient import TestClient

from archsearch.dashboard import create_app
from archsearch.storage import Database, records
from archsearch.storage import rungs as rung_rows
from archsearch.studies.fidelity_stats import agreement


def _store(url):
    with Database(url) as db:
        study = records.ensure_study(db, name="fidelity", space_hash="h", study_file={},
                                     objectives=[{"metric": "val_loss", "direction": "minimize"}],
                                     n_trials_target=8, archsearch_version="test")
        short, long = [1.0, 2.0, 3.0], [1.5, 2.5, 3.5]
        candidates = [{"number": n, "chosen_by": "random", "short": [s], "long": [lv]}
                      for n, (s, lv) in enumerate(zip(short, long))]
        stats = {"val_loss": agreement(short, long, resamples=100).to_dict()}
        rung_rows.add_fidelity(db, study.id, factor=4.0, candidates=candidates, noise=None, stats=stats)
        rung_rows.add_fidelity(db, study.id, factor=4.0, candidates=candidates, noise=None, stats=stats,
                               partial=True, n_chosen=8)
    return study.id


def test_a_partial_measurement_says_how_many_candidates_of_how_many(tmp_path):
    url = f"sqlite:///{tmp_path / 'fidelity.db'}"
    study_id = _store(url)
    client = TestClient(create_app(url), raise_server_exceptions=False)
    html = client.get(f"/study/{study_id}").text
    section = html[html.index('id="fidelity"'):]
    section = section[:section.index("</section>")]
    panels = re.findall(r'<div class="fidelity" data-id="\d+">(.*?)</div>', section, re.S)
    latest, whole = panels  # the latest first
    assert "partial: 3 of 8 candidates" in latest and "time limit" in latest
    assert "not measured before the time limit" in latest
    assert "partial" not in whole and "measured with one seed" in whole
    summary = client.get(f"/api/study/{study_id}/summary").json()["fidelity"]
    assert [(f["partial"], f["n_chosen"]) for f in summary] == [(True, 8), (False, 3)]
