"""The dashboard counts a trial and its retries once, by the latest attempt's status (archsearch.storage.tally),
as `study list` and the runner do."""

from starlette.testclient import TestClient

from archsearch.dashboard import create_app
from archsearch.storage import Database
from archsearch.storage.tally import study_tally

from dashboard_helpers import store_rows


def test_a_retried_trial_counts_once_by_its_latest_attempt(tmp_path):
    url = f"sqlite:///{tmp_path / 'retries.db'}"
    # Trial 0 interrupted, retried as 1 (completed); trial 2 failed; trial 3 retried as 4, still running.
    study_id = store_rows(url, "retries", [(0, None, "interrupted", None), (1, 0, "completed", [1.0]),
                                           (2, None, "failed", None), (3, None, "interrupted", None),
                                           (4, 3, "running", None)], n_trials_target=3)
    with Database(url) as db:
        assert study_tally(db, study_id).by_status == {"completed": 1, "failed": 1, "running": 1}
    page = TestClient(create_app(url), raise_server_exceptions=False).get("/")
    assert page.status_code == 200
    assert all(f"{status} 1" in page.text for status in ("completed", "failed", "running"))
    assert "interrupted" not in page.text
