"""The main job end to end: the shipped quickstart study file through the CLI, real training (2 of its 5 trials)."""

import json
from importlib import resources

import pytest

from archsearch.cli import main


@pytest.mark.slow
def test_quickstart_runs_stores_and_points_to_the_dashboard(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    quickstart = str(resources.files("archsearch.study_files") / "quickstart.yaml")
    assert main(["study", "run", quickstart, "--storage", url, "--n-trials", "2",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"archsearch dashboard --storage {url}" in out and "best trials (Pareto front)" in out
    assert main(["results", "export", "--storage", url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    trained = [r for r in rows if r["status"] in ("completed", "stopped")]
    assert trained, [r["status"] for r in rows]
    for r in trained:
        assert r["curve"] and r["versions"] and r["backends"] and r["precision"]
        assert r["spec"]["name"].startswith("quickstart-t")
    completed = [r for r in rows if r["status"] == "completed"]
    assert all(0 < r["metrics"]["val_loss"] < 5 for r in completed)
