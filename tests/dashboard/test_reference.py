"""A study's reference (study file `reference:`, e.g. a compression study's parent) on the study page: its panel
with name, size, layer strip and metrics, the best trial's value beside the reference's for each objective the
reference has a value for; none for a study without one. And the status filter offers every trial status."""

import re

import pytest
from starlette.testclient import TestClient

from archsearch.dashboard import create_app
from archsearch.storage import Database, records
from archsearch.storage.models import TRIAL_STATUSES
from archsearch.studies.study_file import Reference

REFERENCE = Reference.model_validate({
    "name": "parent", "source": "/runs/parent", "n_params": 1_127_388, "pattern": "(M-)x2 *-",
    "blocks": {"M": {"kind": "mamba2"}, "-": {"kind": "mlp"}, "*": {"kind": "attention", "window": 32}},
    "metrics": {"val_loss": 0.7639, "accuracy": 0.5}}).model_dump(mode="json")
OBJECTIVES = [{"metric": "val_loss", "direction": "minimize"}, {"metric": "n_params", "direction": "minimize"},
              {"metric": "tokens_per_s", "direction": "maximize"}]


def _store(url: str, name: str, study_file: dict, trials) -> int:
    """A study stored row by row (no training): each trial (number, status, objective values)."""
    with Database(url) as db:
        study = records.ensure_study(db, name=name, space_hash="h", study_file=study_file, objectives=OBJECTIVES,
                                     n_trials_target=len(trials), archsearch_version="test")
        for number, status, values in trials:
            row = records.start_trial(db, study_id=study.id, optuna_trial_id=number, number=number,
                                      params={"d_model": 32 * (number + 1)}, retry_of=None, worker="w")
            records.update_trial(db, row, status=status, objectives=values, fits=True)
        return study.id


@pytest.fixture
def client_and_ids(tmp_path):
    url = f"sqlite:///{tmp_path / 'ref.db'}"
    with_ref = _store(url, "with-reference", {"reference": REFERENCE},
                      [(0, "completed", [0.80, 700_000.0, 10.0]), (1, "completed", [0.73, 900_000.0, 12.0]),
                       (2, "duplicate", [0.73, 900_000.0, 12.0])])
    without = _store(url, "without-reference", {"reference": None}, [(0, "completed", [0.9, 5.0, 1.0])])
    return TestClient(create_app(url)), with_ref, without


def _section(html: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert found, section_id
    return found.group(1)


def test_the_reference_panel_names_the_reference_and_sets_the_best_trials_beside_it(client_and_ids):
    client, with_ref, _ = client_and_ids
    page = client.get(f"/study/{with_ref}")
    assert page.status_code == 200
    panel = _section(page.text, "reference")
    assert '<td class="ref-name">parent</td>' in panel and "<code>/runs/parent</code>" in panel
    assert '<td class="num ref-params">1,127,388</td>' in panel
    assert '<code class="ref-pattern">(M-)x2 *-</code>' in panel
    # the same layer strip as the trials table: one cell per layer, coloured by kind (local attention apart)
    looks = re.findall(r'<span class="cell k-([a-z0-9-]+)" title="layer', panel)
    assert looks == ["mamba2", "mlp", "mamba2", "mlp", "attention-local", "mlp"]
    metrics = dict(re.findall(r'<tr class="ref-metric" data-metric="(\w+)"><th>\w+</th><td class="num">([^<]+)</td>',
                              panel))
    assert metrics == {"accuracy": "0.5", "val_loss": "0.7639"}
    # objectives with a reference value: val_loss (a metric) and n_params (the field); tokens_per_s has none
    rows = dict(re.findall(r'<tr data-metric="(\w+)"[^>]*>(.*?)</tr>', _section(page.text, "reference")
                           .split('id="reference-vs-best"', 1)[1], re.S))
    assert list(rows) == ["val_loss", "n_params"]
    assert "0.73 (#1)" in rows["val_loss"] and "-0.0339 (better)" in rows["val_loss"]  # the best of 0.80, 0.73
    assert "700,000 (#0)" in rows["n_params"] and "-427,388 (better)" in rows["n_params"]


def test_a_study_without_a_reference_has_no_panel(client_and_ids):
    client, _, without = client_and_ids
    page = client.get(f"/study/{without}")
    assert page.status_code == 200 and 'id="reference"' not in page.text and "without-reference" in page.text


@pytest.mark.parametrize("stored", [{"name": 3}, "not a mapping", {"name": "p", "metrics": {"val_loss": "low"},
                                                                   "n_params": True, "layers": 7, "blocks": []}])
def test_a_malformed_stored_reference_never_breaks_the_page(tmp_path, stored):
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    study_id = _store(url, "odd", {"reference": stored}, [(0, "completed", [0.9, 5.0, 1.0])])
    page = TestClient(create_app(url)).get(f"/study/{study_id}")
    assert page.status_code == 200
    if isinstance(stored, dict) and isinstance(stored.get("name"), str):  # the name is enough for a panel
        panel = _section(page.text, "reference")
        assert '<td class="num ref-params">—</td>' in panel and "ref-metric" not in panel and "k-" not in panel
    else:
        assert 'id="reference"' not in page.text


def test_the_status_filter_offers_every_trial_status_and_filters_duplicates(client_and_ids):
    client, with_ref, _ = client_and_ids
    html = client.get(f"/study/{with_ref}").text
    select = re.search(r'<select id="status-filter">(.*?)</select>', html, re.S).group(1)
    assert re.findall(r'<option value="(\w*)">', select) == ["", *TRIAL_STATUSES]
    assert "duplicate" in TRIAL_STATUSES
    body = client.get(f"/api/study/{with_ref}/trials", params={"f.status": "=duplicate"}).json()
    assert [r["number"] for r in body["rows"]] == [2]
