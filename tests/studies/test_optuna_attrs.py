"""What plain Optuna tools see of an archsearch study (issue 18 point 6): the pattern, sizes, metrics and
feasibility as user attributes, the learning curve as intermediate values, the list-style `constraints` attribute
optuna-dashboard 0.21 reads; and a study opened through optuna-dashboard's own serializer."""

import optuna
import pytest

from archsearch.storage import Database
from archsearch.storage import records

from studies_helpers import ToyEvaluator, run_study


def _rows(url):
    with Database(url) as db:
        return records.trials_of(db, records.study_by_name(db, "toy").id)


@pytest.mark.parametrize("objectives", [["val_loss"], ["val_loss", "memory_bytes"]], ids=["single", "multi"])
def test_trials_carry_pattern_sizes_curve_metrics_and_feasibility(write_study, sqlite_url, objectives):
    run_study(write_study(n_trials=8, objectives=objectives, early_stop={"enabled": False}), sqlite_url,
         ToyEvaluator(steps=6, eval_every=2))
    rows = _rows(sqlite_url)
    trials = {t.number: t for t in optuna.load_study(study_name="toy", storage=sqlite_url).trials}
    statuses = {r.status for r in rows}
    assert {"completed", "infeasible"} <= statuses, statuses  # both kinds checked below
    for r in rows:
        t = trials[r.number]
        assert t.user_attrs["pattern"] == r.pattern_compact and t.user_attrs["pattern_expanded"] == r.pattern
        assert t.user_attrs["n_params"] == r.n_params and t.user_attrs["feasible"] is r.fits
        assert t.user_attrs["status"] == r.status
        assert t.user_attrs["memory_bytes"] == r.budget["budget:a10g@2Mx16"]["total_bytes"]
        names = t.user_attrs["constraint_names"]
        assert names == list(r.constraints)
        assert t.system_attrs["constraints"] == [r.constraints[k] for k in names]
        assert all(t.system_attrs[f"constraints:{k}"] == v for k, v in r.constraints.items())
        if r.status == "completed":
            assert t.user_attrs["metrics"] == {"val_loss": r.metrics["val_loss"], "accuracy": r.metrics["accuracy"]}
            assert t.user_attrs["curve_metric"] == "val_loss"
            assert t.intermediate_values == {p["step"]: p["val_loss"] for p in r.curve}
            assert sorted(t.intermediate_values) == [2, 4, 6]
        else:  # never trained: no curve, no metrics, infeasible
            assert t.intermediate_values == {} and "metrics" not in t.user_attrs
            assert t.user_attrs["feasible"] is False and max(t.system_attrs["constraints"]) > 0


def test_a_study_begun_without_the_list_goes_on_without_it(write_study, sqlite_url):
    """Optuna reads both forms into one `trial.constraints`; mixing trials with and without the list would give
    them different constraint names, which the GP sampler refuses."""
    path = write_study(n_trials=2)
    run_study(path, sqlite_url)
    storage = optuna.storages.RDBStorage(sqlite_url)
    study_id = storage.get_study_id_from_name("toy")
    for t in storage.get_all_trials(study_id):  # as a study stored before this change
        with storage.scoped_session() as session:
            session.query(optuna.storages._rdb.models.TrialSystemAttributeModel).filter_by(
                trial_id=t._trial_id, key="constraints").delete()
            session.commit()
    storage.engine.dispose()
    run_study(path, sqlite_url, n_trials=4)  # resumed: two more trials
    trials = optuna.load_study(study_name="toy", storage=sqlite_url).trials
    assert len(trials) == 4
    assert all("constraints" not in t.system_attrs and "constraints:valid" in t.system_attrs for t in trials)
    assert len({tuple(sorted(t.constraints)) for t in trials}) == 1


def test_optuna_dashboard_shows_the_pattern_the_curve_and_the_constraints(write_study, sqlite_url):
    """Through optuna-dashboard's own API (its bottle app, called as a WSGI app): the trial JSON its pages draw."""
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is a dev dependency")
    import io
    import json
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    run_study(write_study(n_trials=8), sqlite_url, ToyEvaluator(steps=4, eval_every=2))
    rows = {r.number: r for r in _rows(sqlite_url)}
    storage = optuna.storages.RDBStorage(sqlite_url)
    app = wsgi(storage)
    study_id = storage.get_study_id_from_name("toy")

    def get(path):
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
        setup_testing_defaults(environ)
        status = []
        body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
        assert status[0].startswith("200"), (status, body[:300])
        return json.loads(body)

    assert {"completed", "infeasible"} <= {r.status for r in rows.values()}
    detail = get(f"/api/studies/{study_id}")
    assert {a["key"] for a in detail["union_user_attrs"]} >= {"pattern", "n_params", "feasible", "metrics"}
    assert detail["has_intermediate_values"] is True
    for trial in detail["trials"]:
        r = rows[trial["number"]]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert attrs["pattern"] == r.pattern_compact and attrs["status"] == r.status
        assert trial["constraints"] == [r.constraints[k] for k in r.constraints]
        curve = {v["step"]: v["value"] for v in trial["intermediate_values"]}
        if r.status == "completed":
            assert curve == {p["step"]: pytest.approx(p["val_loss"]) for p in r.curve} and len(curve) == 2
        else:
            assert curve == {} and max(trial["constraints"]) > 0
    storage.engine.dispose()
