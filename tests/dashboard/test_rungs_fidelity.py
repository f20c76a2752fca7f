"""Successive-halving rungs and proxy-fidelity measurements on the dashboard: rows written through
archsearch.storage (rungs: decide_rung / set_trial_rung as archsearch.studies.promotion writes them; fidelity:
add_fidelity with statistics from archsearch.studies.fidelity_stats, as `study fidelity` stores them)."""

import re

import pytest
from starlette.testclient import TestClient

from archsearch.dashboard import create_app
from archsearch.storage import Database, records
from archsearch.storage import rungs as rung_rows
from archsearch.studies.fidelity_stats import agreement

from dashboard_helpers import store_rows

FRACTIONS = [0.25, 0.5, 1.0]
OBJECTIVES = [{"metric": "val_loss", "direction": "minimize"}, {"metric": "recall", "direction": "maximize"}]


def _study(db, name, study_file):
    return records.ensure_study(db, name=name, space_hash="h", study_file=study_file, objectives=OBJECTIVES,
                                n_trials_target=5, archsearch_version="test")


def _trial(db, study_id, number, status, objectives=None):
    row = records.start_trial(db, study_id=study_id, optuna_trial_id=number, number=number,
                              params={"d_model": 64 * (number + 1)}, retry_of=None, worker="w")
    if status != "running":
        records.update_trial(db, row, status=status, objectives=objectives, fits=status != "infeasible")
    return row


def _rung(db, study_id, row, number, rung, decision, values=(2.0, 0.5)):
    rung_rows.decide_rung(db, study_id=study_id, trial_number=number, rung=rung, fraction=FRACTIONS[rung],
                          step=10 * (rung + 1), objectives=list(values), feasible=True, decision=decision, worker="w")
    rung_rows.set_trial_rung(db, row, rung)


# (number, status, [decision at rung 0, 1, 2 ...]); #4 was rejected by the constraints and reached no rung.
HISTORY = [(0, "completed", ["promoted", "promoted", "final"]), (1, "stopped", ["promoted", "stopped"]),
           (2, "stopped", ["stopped"]), (3, "running", ["promoted"]), (4, "infeasible", [])]


@pytest.fixture
def halving_study(tmp_path):
    return _store_halving(f"sqlite:///{tmp_path / 'halving.db'}")


def _store_halving(url):
    with Database(url) as db:
        study = _study(db, "halving", {"halving": {"rungs": FRACTIONS, "keep": 1 / 3}})
        rows = {}
        for number, status, decisions in HISTORY:
            rows[number] = _trial(db, study.id, number, status,
                                  None if status == "running" else [1.0 + number, 0.5])
            for rung, decision in enumerate(decisions):
                _rung(db, study.id, rows[number], number, rung, decision, (1.5 + number - rung / 10, 0.4))
    return url, study.id, rows


def _client(url):
    return TestClient(create_app(url), raise_server_exceptions=False)


def _labels(client, study_id, **params):
    page = client.get(f"/api/study/{study_id}/trials", params=params).json()
    return {r["number"]: (r["rung"], r["rung_label"]) for r in page["rows"]}, page


def test_a_halving_study_shows_each_trials_rung_and_the_per_rung_summary(halving_study):
    url, study_id, rows = halving_study
    client = _client(url)
    labels, page = _labels(client, study_id)
    assert "rung" in [c["key"] for c in page["columns"]]
    assert labels == {0: (3, "completed rung 3 of 3 (1 of the budget)"),
                      1: (2, "stopped at rung 2 of 3 (0.5 of the budget)"),
                      2: (1, "stopped at rung 1 of 3 (0.25 of the budget)"),
                      3: (1, "promoted to rung 2 of 3 (0.5 of the budget)"),
                      4: (None, None)}
    # the rung column sorts and filters by the rung reached, counted from 1 as the label shows it
    assert set(_labels(client, study_id, **{"f.rung": ">=2"})[0]) == {0, 1}
    assert list(_labels(client, study_id, sort="rung", desc="1")[0]) == [0, 1, 2, 3, 4]

    html = client.get(f"/study/{study_id}").text
    summary = html[html.index('id="rung-summary"'):]
    summary = summary[:summary.index("</table>")]
    cells = {int(m[0]): [c for c in re.findall(r'<td class="num">([^<]*)</td>', m[1])]
             for m in re.findall(r'<tr data-rung="(\d)">(.*?)</tr>', summary, re.S)}
    # share of the budget, reaching, promoted, stopped, trained to the end (the last rung only)
    assert cells == {0: ["0.25", "4", "3", "1", "—"], 1: ["0.5", "2", "1", "1", "—"], 2: ["1", "1", "0", "0", "1"]}
    counts = client.get(f"/api/study/{study_id}/summary").json()["rungs"]
    assert [(c["reached"], c["promoted"], c["stopped"], c["final"]) for c in counts] == [(4, 3, 1, 0), (2, 1, 1, 0),
                                                                                      (1, 0, 0, 1)]


def test_the_trial_page_shows_where_the_trial_stopped_and_its_value_at_each_rung(halving_study):
    url, study_id, rows = halving_study
    html = _client(url).get(f"/study/{study_id}/compare", params={"t": rows[1]}).text
    row = html[html.index('id="rung-row"'):]
    row = row[:row.index("</tr>")]
    assert "stopped at rung 2 of 3 (0.5 of the budget)" in row
    rungs = re.findall(r'<li data-rung="(\d)">([^<]*)</li>', row)
    assert [r for r, _ in rungs] == ["0", "1"]
    assert rungs[0][1].startswith("rung 1 (0.25 of the budget, step 10): promoted; val_loss 2.5, recall 0.4")
    assert rungs[1][1].startswith("rung 2 (0.5 of the budget, step 20): stopped; val_loss 2.4")
    never = _client(url).get(f"/study/{study_id}/compare", params={"t": rows[4]}).text
    assert "reached no rung" in never


def test_a_new_rung_decision_reaches_a_running_trials_label(halving_study):
    url, study_id, rows = halving_study
    client = _client(url)
    before = client.get(f"/api/study/{study_id}/summary").json()["stamp"]
    assert _labels(client, study_id)[0][3][1] == "promoted to rung 2 of 3 (0.5 of the budget)"
    with Database(url) as db:  # trial 3 passes rung 1 (its status stays running)
        _rung(db, study_id, rows[3], 3, 1, "promoted")
    assert client.get(f"/api/study/{study_id}/summary").json()["stamp"] != before
    assert _labels(client, study_id)[0][3] == (2, "promoted to rung 3 of 3 (1 of the budget)")
    counts = client.get(f"/api/study/{study_id}/summary").json()["rungs"]
    assert (counts[1]["reached"], counts[1]["promoted"]) == (3, 2)


@pytest.mark.postgres
def test_postgresql_shows_rungs_and_sees_a_new_decision(pg_url):
    stored = _store_halving(pg_url)  # the stamp's sum of rungs and the grouped counts, on PostgreSQL's SQL
    test_a_halving_study_shows_each_trials_rung_and_the_per_rung_summary(stored)
    test_the_trial_page_shows_where_the_trial_stopped_and_its_value_at_each_rung(stored)
    test_a_new_rung_decision_reaches_a_running_trials_label(stored)  # the one that writes, last


SHORT = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
LONG = [1.0, 3.0, 2.0, 4.0, 6.0, 5.0]  # two adjacent pairs swapped: 13 of 15 pairs agree


def test_a_study_with_fidelity_rows_shows_tau_accuracy_and_their_intervals(tmp_path):
    url = f"sqlite:///{tmp_path / 'fidelity.db'}"
    loss = agreement(SHORT, LONG, resamples=300, seed=0).to_dict()
    recall = agreement(SHORT, [-v for v in SHORT], resamples=300, seed=0).to_dict()  # every pair reversed
    assert loss["tau"] == pytest.approx(11 / 15) and loss["pairwise_accuracy"] == pytest.approx(13 / 15)
    with Database(url) as db:
        study = _study(db, "fidelity", {})
        for number, value in enumerate(SHORT):
            _trial(db, study.id, number, "completed", [value, 0.5])
        candidates = [{"number": n, "chosen_by": "front" if n < 2 else "random", "pattern": "M-*-",
                       "short": [s, 0.5], "long": [lv, 0.5]} for n, (s, lv) in enumerate(zip(SHORT, LONG))]
        rung_rows.add_fidelity(db, study.id, factor=4.0, candidates=candidates,
                               noise={"number": 0, "seeds": [0, 1], "values": [[1.0, 0.5], [1.0123, 0.5]],
                                      "abs_diff": {"val_loss": 0.0123}},
                               stats={"val_loss": loss, "recall": recall})
    client = _client(url)
    html = client.get(f"/study/{study.id}").text
    section = html[html.index('id="fidelity"'):]
    section = section[:section.index("</section>")]
    assert "6 candidates retrained at <b>4×</b> the budget" in section
    assert "#0 <span class=\"hint\">(front)</span>" in section

    def row(metric):
        found = re.search(rf'<tr data-metric="{metric}">(.*?)</tr>', section, re.S)
        return dict(re.findall(r'<td class="num ([a-z-]+)">([^<]*)</td>', found[1]))

    assert row("val_loss") == {"tau": "0.7333", "tau-ci": f"[{loss['tau_ci95'][0]:.4g}, {loss['tau_ci95'][1]:.4g}]",
                               "accuracy": "0.8667", "accuracy-ci": f"[{loss['pairwise_accuracy_ci95'][0]:.4g}, "
                                                                    f"{loss['pairwise_accuracy_ci95'][1]:.4g}]"}
    assert row("recall")["tau"] == "-1" and row("recall")["accuracy"] == "0"
    assert "n" not in row("val_loss") and '<td class="num">6</td>' in section  # candidates with both values
    assert "Noise floor: trial #0 at seeds 0 and 1, |difference| val_loss 0.0123." in section
    assert client.get(f"/api/study/{study.id}/summary").json()["fidelity"][0]["stats"]["val_loss"]["tau"] == \
        pytest.approx(11 / 15)
    assert 'id="rung-summary"' not in html  # no halving in this study


def test_a_study_with_neither_is_unchanged(tmp_path):
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    study_id = store_rows(url, "plain", [(0, None, "completed", [1.0]), (1, None, "stopped", [2.0])])
    client = _client(url)
    html = client.get(f"/study/{study_id}").text
    assert 'id="rungs"' not in html and 'id="fidelity"' not in html and "Successive halving" not in html
    page = client.get(f"/api/study/{study_id}/trials").json()
    assert "rung" not in [c["key"] for c in page["columns"]]
    assert all("rung" not in r and "rung_label" not in r for r in page["rows"])
    summary = client.get(f"/api/study/{study_id}/summary").json()
    assert "rungs" not in summary and "fidelity" not in summary
    trial = client.get(f"/study/{study_id}/compare", params={"t": page["rows"][1]["id"]}).text
    assert 'id="rung-row"' not in trial
    sort = client.get(f"/api/study/{study_id}/trials", params={"sort": "rung"})
    assert sort.status_code == 400 and "unknown column 'rung'" in sort.json()["error"]


@pytest.mark.browser
def test_in_chromium_the_rung_column_and_summary_follow_new_decisions(halving_study, page):
    import optuna
    from playwright.sync_api import expect

    from dashboard_helpers import screenshot, serving

    url, study_id, rows = halving_study
    optuna.storages.RDBStorage(url)  # Optuna's tables, as a real run leaves them (its plots read them)
    with serving(url) as base:
        page.goto(f"{base}/study/{study_id}")
        page.wait_for_selector('#trials[data-ready="1"] tbody tr', state="attached")
        labels = page.locator('#trials tbody td[data-key="rung"]').all_inner_texts()
        assert labels == ["completed rung 3 of 3 (1 of the budget)", "stopped at rung 2 of 3 (0.5 of the budget)",
                          "stopped at rung 1 of 3 (0.25 of the budget)", "promoted to rung 2 of 3 (0.5 of the budget)",
                          "—"]
        with Database(url) as db:  # trial 3 passes rung 1: the page's poll redraws the label and the counts
            _rung(db, study_id, rows[3], 3, 1, "promoted")
        expect(page.locator('#trials tbody tr[data-number="3"] td[data-key="rung"]')).to_have_text(
            "promoted to rung 3 of 3 (1 of the budget)", timeout=15000)  # the page polls every 3 s
        expect(page.locator('#rung-summary tr[data-rung="1"] td')).to_have_text(["0.5", "3", "2", "1", "—"])
        screenshot(page, "study-rungs")
    assert not page.console_errors and not page.outside_requests
