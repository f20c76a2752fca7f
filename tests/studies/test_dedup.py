"""Each distinct candidate is trained once (issue 14.3): the canonical spec hash, and a study whose sampler repeats
candidates trains each model once, recording the repeats as duplicates that report the first trial's values and
are listed once on fronts."""

import json
import random

import optuna
import pytest
from hypothesis import given, settings, strategies as st
from starlette.testclient import TestClient

from archsearch.cli import main
from archsearch.dashboard import create_app
from archsearch.spec import parse_spec
from archsearch.storage import Database
from archsearch.storage import records
from archsearch.storage.urls import full_url, parse
from archsearch.studies.dedup import candidate_key, canonical_hash, training_identity

from studies_helpers import BASE_SPEC, ToyEvaluator, run_study


# ------------------------------------------------------------------------------------------ canonical hash
def _spec(**fields):
    return parse_spec({**BASE_SPEC, **fields})


specs = st.fixed_dictionaries({
    "d_model": st.sampled_from([32, 64, 128]),
    "d_state": st.sampled_from([8, 16]),
    "kv": st.sampled_from([1, 2, 4]),
    "ffn_ratio": st.sampled_from([1, 2, 3]),
    "mixers": st.lists(st.sampled_from("M*"), min_size=1, max_size=5),
})


def _doc(p):
    blocks = {"M": {"kind": "mamba2", "n_heads": 2, "head_dim": 32, "d_state": p["d_state"], "chunk_size": 32},
              "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": p["kv"], "head_dim": 16, "rope_theta": None},
              "-": {"kind": "mlp", "ffn_ratio": p["ffn_ratio"]}}
    return {"name": "a", "vocab_size": 64, "d_model": p["d_model"], "max_context": 4096,
            "pattern": "".join(m + "-" for m in p["mixers"]), "blocks": blocks}


def _rewritten(doc, rng):
    """The same model written differently: keys shuffled, symbols renamed, an unused block, a repeat group in the
    pattern, ffn_ratio as the ffn_dim it gives, another name and description."""
    out = {"name": "b", "description": "same model", **doc}
    rename = {"M": "m", "*": "A", "-": "F"}
    out["blocks"] = {rename[s]: dict(b) for s, b in doc["blocks"].items()}
    out["blocks"]["F"] = {"kind": "mlp", "ffn_dim": doc["blocks"]["-"]["ffn_ratio"] * doc["d_model"]}
    out["blocks"]["U"] = {"kind": "mlp", "ffn_ratio": 4}  # defined, never used
    layers = "".join(rename[c] for c in doc["pattern"])
    out["pattern"] = f"({layers[:2]})x1 {layers[2:]}" if len(layers) > 2 else layers
    items = list(out.items())
    rng.shuffle(items)
    return {k: (dict(sorted(v.items(), key=lambda _: rng.random())) if isinstance(v, dict) else v) for k, v in items}


@settings(max_examples=40, deadline=None)
@given(specs, st.integers(0, 2**16))
def test_the_same_model_written_differently_hashes_the_same(p, seed):
    doc = _doc(p)
    assert canonical_hash(parse_spec(doc)) == canonical_hash(parse_spec(_rewritten(doc, random.Random(seed))))


@settings(max_examples=40, deadline=None)
@given(specs, specs)
def test_different_models_hash_differently(p, q):
    a, b = parse_spec(_doc(p)), parse_spec(_doc(q))
    # d_state only matters with a Mamba-2 layer, kv heads only with an attention layer; every mixer has an MLP.
    used = {"d_model": True, "mixers": True, "ffn_ratio": True, "d_state": "M" in p["mixers"], "kv": "*" in p["mixers"]}
    same_model = all(p[k] == q[k] for k, matters in used.items() if matters)
    assert (canonical_hash(a) == canonical_hash(b)) == same_model


def test_the_key_separates_task_recipe_seed_and_target():
    spec = _spec()
    training = training_identity("mqar", {"steps": 10}, 0)
    key = candidate_key(spec, None, training)
    assert key == candidate_key(_spec(name="other"), None, training_identity({"name": "mqar"}, {"steps": 10}, 0))
    assert key == candidate_key(spec, None, training_identity("mqar", {"steps": 10, "seed": 0}, 5))  # recipe's wins
    for other in (training_identity("mqar", {"steps": 11}, 0), training_identity("mqar", {"steps": 10}, 1),
                  training_identity({"name": "mqar", "options": {"vocab": 8}}, {"steps": 10}, 0)):
        assert candidate_key(spec, None, other) != key
    assert candidate_key(spec, _spec(d_model=128), training) != key


# ------------------------------------------------------------------------------------------ a study that repeats
# Four parameter combinations, two models: with no attention layer, placement means nothing, and one attention
# layer in two mixers lands on the second under either placement.
REPEATING = {"pattern": {"n_layers": 2, "attention_count": {"type": "categorical", "choices": [0, 1]},
                         "placement": {"type": "categorical", "choices": ["evenly", "late"]}, "mlp": "none"}}


@pytest.fixture
def repeated(write_study, storage_url):
    path = write_study(n_trials=8, space=REPEATING, constraints={}, objectives=["val_loss", "n_params"],
                       early_stop={"enabled": False})
    evaluator = ToyEvaluator()
    summary = run_study(path, storage_url, evaluator)
    with Database(storage_url) as db:
        rows = records.trials_of(db, records.study_by_name(db, "toy").id)
    return path, storage_url, evaluator, summary, rows


def test_each_distinct_candidate_trains_once_and_repeats_reuse_its_result(repeated):
    path, url, evaluator, summary, rows = repeated
    assert len(rows) == 8 and {r.status for r in rows} <= {"completed", "duplicate"}
    keys = {r.candidate_key for r in rows}
    completed = [r for r in rows if r.status == "completed"]
    duplicates = [r for r in rows if r.status == "duplicate"]
    assert len(keys) == len(completed) == evaluator.calls == 2 and len(duplicates) == 6
    first = {}
    for row in rows:
        first.setdefault(row.candidate_key, row)
    trials = {t.number: t for t in optuna.load_study(study_name="toy", storage=full_url(parse(url))).trials}
    for row in duplicates:
        original = first[row.candidate_key]
        assert original.status == "completed" and row.duplicate_of == original.number < row.number
        assert row.objectives == original.objectives and row.metrics == original.metrics
        assert row.spec_hash == original.spec_hash and row.train_time_s == 0.0
        assert trials[row.number].values == trials[original.number].values  # Optuna told the same values
        assert trials[row.number].user_attrs["duplicate_of"] == original.number
        assert trials[row.number].state == optuna.trial.TrialState.COMPLETE
    assert summary.counts == {"completed": 2, "duplicate": 6} and summary.done == 8


def test_fronts_list_each_candidate_once_naming_its_duplicates(repeated, capsys):
    path, url, evaluator, summary, rows = repeated
    originals = {r.number for r in rows if r.status == "completed"}
    by_original = {}
    for r in rows:
        if r.status == "duplicate":
            by_original.setdefault(r.duplicate_of, []).append(r.number)
    assert {b["number"] for b in summary.best} <= originals
    assert len({b["spec_hash"] for b in summary.best}) == len(summary.best)
    for b in summary.best:
        assert b["duplicates"] == by_original.get(b["number"], [])
    assert main(["study", "best", str(path), "--storage", url, "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert [b["number"] for b in best] == [b["number"] for b in summary.best]
    assert main(["study", "best", "toy", "--storage", url]) == 0
    out = capsys.readouterr().out
    for b in best:
        if b["duplicates"]:
            assert "duplicates: " + ", ".join(f"#{n}" for n in b["duplicates"]) in out


def test_the_dashboard_shows_a_duplicate_and_plots_each_candidate_once(repeated):
    path, url, evaluator, summary, rows = repeated
    client = TestClient(create_app(url), raise_server_exceptions=False)
    with Database(url) as db:
        study_id = records.study_by_name(db, "toy").id
    duplicate = next(r for r in rows if r.status == "duplicate")
    page = client.get(f"/study/{study_id}/compare?t={duplicate.id}")
    assert page.status_code == 200
    assert f"trial #{duplicate.duplicate_of} (not trained" in page.text
    body = client.get(f"/api/study/{study_id}/pareto?x=obj:0&y=obj:1").json()
    counts = body["counts"]
    assert counts.get("front", 0) + counts.get("feasible", 0) == 2 and set(counts) <= {"front", "feasible"}
    assert "2 trials plotted; 6 duplicate(s) of plotted trials shown once" in json.dumps(body["figure"])


def test_a_failed_original_is_trained_again(write_study, sqlite_url):
    """Only a completed result is reused: a candidate whose training failed is not a duplicate of it."""
    path = write_study(n_trials=4, space=REPEATING, constraints={}, sampler={"type": "grid"})  # each model twice
    calls = []

    def fail_first(spec):
        calls.append(spec.pattern_string)
        return len(calls) == 1

    evaluator = ToyEvaluator(fail_when=fail_first)
    run_study(path, sqlite_url, evaluator)
    with Database(sqlite_url) as db:
        rows = records.trials_of(db, records.study_by_name(db, "toy").id)
    failed = rows[0]
    assert failed.status == "failed"
    again = [r for r in rows[1:] if r.candidate_key == failed.candidate_key]
    assert len(again) == 1 and again[0].status == "completed" and again[0].duplicate_of is None
    assert evaluator.calls == 3 and sorted(r.status for r in rows) == ["completed", "completed", "duplicate",
                                                                       "failed"]
