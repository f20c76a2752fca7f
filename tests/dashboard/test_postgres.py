"""The dashboard over PostgreSQL: every session is read-only, and the pages read what the storage layer wrote."""

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from archsearch.dashboard import create_app
from archsearch.dashboard.readonly import open_readonly
from archsearch.storage import Database, records

pytestmark = pytest.mark.postgres

def test_postgresql_is_read_only_and_shows_the_stored_study(pg_url):
    with Database(pg_url) as db:
        study = records.ensure_study(db, name="pg-study", space_hash="h", study_file={},
                                     objectives=[{"metric": "val_loss", "direction": "minimize"}],
                                     n_trials_target=2, archsearch_version="test")
        trial = records.start_trial(db, study_id=study.id, optuna_trial_id=1, number=0, params={"d_model": 64},
                                    retry_of=None, worker="w")
        records.update_trial(db, trial, status="completed", objectives=[1.25], fits=True, pattern="M-",
                             spec={"blocks": {"M": {"kind": "mamba2"}, "-": {"kind": "mlp"}}})
    engine = open_readonly(pg_url)
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
        conn.execute(sa.text("UPDATE archsearch_studies SET name = 'changed'"))
    engine.dispose()
    client = TestClient(create_app(pg_url))
    assert "pg-study" in client.get("/").text
    body = client.get(f"/api/study/{study.id}/trials").json()
    assert body["total"] == 1 and body["rows"][0]["values"] == [1.25]
    assert body["rows"][0]["strip"] == [["M", "mamba2", "mamba2"], ["-", "mlp", "mlp"]]
    assert client.get(f"/api/study/{study.id}/summary").json()["best"][0]["value"] == 1.25


def test_postgresql_running_trial_shows_its_latest_evaluation(pg_url):
    """A running trial's progress comes from Optuna's intermediate values (archsearch.dashboard.progress)."""
    import optuna

    with Database(pg_url) as db:
        storage = db.optuna_storage()
        optuna_study = optuna.create_study(study_name="pg-running", storage=storage, directions=["minimize"] * 2)
        running = optuna_study.ask()
        storage.set_trial_user_attr(running._trial_id, "curve_metric", "val_loss")
        storage.set_trial_intermediate_value(running._trial_id, 10, 2.5)
        study = records.ensure_study(db, name="pg-running", space_hash="h", study_file={},
                                     objectives=[{"metric": "val_loss", "direction": "minimize"},
                                                 {"metric": "n_params", "direction": "minimize"}],
                                     n_trials_target=2, archsearch_version="test")
        row = records.start_trial(db, study_id=study.id, optuna_trial_id=running._trial_id, number=running.number,
                                  params={}, retry_of=None, worker="w")
    client = TestClient(create_app(pg_url))
    body = client.get(f"/api/study/{study.id}/trials").json()
    assert body["rows"][0]["latest"] == {"metric": "val_loss", "step": 10, "value": 2.5}
    assert client.get(f"/api/study/{study.id}/summary").json()["progress"] == "1:10"
    curves = client.get(f"/api/study/{study.id}/curves", params={"ids": str(row)}).json()
    assert curves["figure"]["data"][0]["y"] == [2.5]
