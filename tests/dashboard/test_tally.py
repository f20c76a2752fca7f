"""The dashboard counts a trial and its retries once, by the latest attempt's status (archsearch.storage.tally),
as `study list` and the runner do."""

from starlette.testclient import TestClient

from archsearch.dashboard import create_app
from archsearch.storage import Database, records
from archsearch.storage.tally import study_tally


def test_a_retried_trial_counts_once_by_its_latest_attempt(tmp_path):
    url = f"sqlite:///{tmp_path / 'retries.db'}"
    with Database(url) as db:
        study = records.ensure_study(db, name="retries", space_hash="h", study_file={},
                                     objectives=[{"metric": "val_loss", "direction": "minimize"}],
                                     n_trials_target=3, archsearch_version="test")
        # Trial 0 interrupted, retried as 1 (completed); trial 2 failed; trial 3 retried as 4, still running.
        plan = [(0, None, "interrupted"), (1, 0, "completed"), (2, None, "failed"), (3, None, "interrupted"),
                (4, 3, "running")]
        for number, retry_of, status in plan:
            trial = records.start_trial(db, study_id=study.id, optuna_trial_id=number, number=number,
                                        params={"d_model": 64}, retry_of=retry_of, worker="w")
            if status != "running":
                records.update_trial(db, trial, status=status, objectives=[1.0] if status == "completed" else None,
                                     fits=True)
        expected = study_tally(db, study.id).by_status
    assert expected == {"completed": 1, "failed": 1, "running": 1}
    client = TestClient(create_app(url), raise_server_exceptions=False)
    page = client.get("/")
    assert page.status_code == 200
    text = page.text
    assert "completed 1" in text and "failed 1" in text and "running 1" in text and "interrupted" not in text
