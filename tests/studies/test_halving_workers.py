"""Successive halving with several worker processes on one PostgreSQL study: every (trial, rung) is decided once,
each trial's fate follows its decisions, and promoted trials continue from their rung's saved state."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archsearch.storage import Database
from archsearch.storage import records
from archsearch.storage import rungs as rung_rows

pytestmark = pytest.mark.postgres

WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {helpers!r})
    from studies_helpers import ResumableToy
    from archsearch.studies import StudyRunner, load_study

    runner = StudyRunner(load_study({study!r}), ResumableToy(steps=8, eval_every=2, sleep_s=0.05), storage={url!r},
                         live=False, seed_offset={index})
    runner.open()
    runner.run()
    runner.close()
""")


def test_three_workers_decide_each_rung_once(write_study, pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # PostgreSQL studies keep run folders under ~/.cache/archsearch/runs
    space = {"parameters": {"d_model": {"type": "categorical", "choices": [16, 32, 48, 64, 80, 96, 112, 128]},
                            "blocks.M.d_state": {"type": "categorical", "choices": [8, 16]}}}
    study = write_study(n_trials=12, space=space, constraints={}, objectives=["val_loss", "n_params"],
                        halving={"rungs": [0.25, 0.5, 1.0], "keep": "1/3"})
    procs = []
    for index in range(3):
        script = tmp_path / f"worker{index}.py"
        script.write_text(WORKER.format(helpers=str(Path(__file__).parent), study=str(study), url=pg_url,
                                        index=index))
        procs.append(subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env={**__import__("os").environ,
                                                                                "HOME": str(tmp_path)}))
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    with Database(pg_url) as db:
        study_id = records.study_by_name(db, "toy").id
        rows = records.trials_of(db, study_id)
        by_rung = {k: {r.trial_number: r for r in rung_rows.rung_results(db, study_id, k)} for k in range(3)}
    trained = [r for r in rows if r.status in ("completed", "stopped")]
    assert len(trained) >= 6 and any(r.status == "stopped" for r in trained), [(r.status, r.error) for r in rows]
    for row in trained:
        decisions = [by_rung[k][row.number].decision for k in range(3) if row.number in by_rung[k]]
        assert len(decisions) == row.rung + 1
        if row.status == "completed":
            assert decisions == ["promoted", "promoted", "final"]
            assert [p["step"] for p in row.curve if "val_loss" in p] == [2, 4, 6, 8]
        else:
            assert decisions == ["promoted"] * row.rung + ["stopped"] and row.rung < 2
    assert {n for k in by_rung for n in by_rung[k]} == {r.number for r in trained}
