"""Fidelity retrainings (archsearch_fidelity_runs) on SQLite and PostgreSQL: stored once however many processes
race to store the same run, read back by key; revision 0004 keeps fidelity rows stored before it (not partial)."""

import threading

import pytest
import sqlalchemy as sa

from archsearch.storage import Database, records
from archsearch.storage import rungs


def _study(db):
    return records.ensure_study(db, name="s", space_hash="h", study_file={"name": "s"},
                                objectives=[{"metric": "val_loss", "direction": "minimize"}],
                                n_trials_target=4, archsearch_version="test")


def _run(db, study_id, key="k1", value=1.0, **overrides):
    fields = dict(run_key=key, trial_number=3, factor=4.0, seed=0, recipe={"steps": 24}, status="completed",
                  objectives=[value], metrics={"val_loss": value}, wall_time_s=12.5)
    return rungs.store_fidelity_run(db, study_id, **{**fields, **overrides})


def test_a_run_is_stored_once_under_racing_writers_and_the_stored_one_wins(storage_url):
    with Database(storage_url) as db:
        study = _study(db)
    outcomes = []

    def store(value):
        with Database(storage_url) as db:
            outcomes.append(_run(db, study.id, value=value).objectives)

    threads = [threading.Thread(target=store, args=(float(i),)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Database(storage_url) as db:
        stored = rungs.fidelity_runs(db, study.id)
    assert list(stored) == ["k1"]
    assert outcomes == [stored["k1"].objectives] * 6  # every racer got the one stored result


def test_runs_read_back_by_key(storage_url):
    with Database(storage_url) as db:
        study = _study(db)
        _run(db, study.id, "long", 1.0)
        _run(db, study.id, "noise", 2.0, factor=1.0, seed=1, recipe={"steps": 6}, status="diverged",
             objectives=[None], metrics={})
        both = rungs.fidelity_runs(db, study.id)
        assert list(both) == ["long", "noise"]
        noise = rungs.fidelity_runs(db, study.id, ["noise", "missing"])["noise"]
        assert (noise.factor, noise.seed, noise.status, noise.objectives, noise.recipe) == (
            1.0, 1, "diverged", [None], {"steps": 6})
        with pytest.raises(ValueError, match="completed, diverged, stopped"):
            _run(db, study.id, "odd", status="failed")
        rungs.add_fidelity(db, study.id, factor=4.0, candidates=[{"number": 3}], noise=None, stats={},
                           partial=True, n_chosen=8)
        (row,) = rungs.fidelity_of(db, study.id)
        assert row.partial and row.n_chosen == 8


def test_revision_0004_keeps_earlier_fidelity_rows_whole(tmp_path):
    from alembic import command

    from archsearch.storage.database import _alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        conn.execute(sa.text("INSERT INTO archsearch_studies (name, space_hash, study_file, objectives, slots_taken, "
                             "created_at, archsearch_version) VALUES ('s', 'h', '{}', '[]', 0, '2026-12-06', 't')"))
        conn.execute(sa.text("INSERT INTO archsearch_fidelity (study_id, factor, candidates, stats, created_at) "
                             "VALUES (1, 4.0, '[{\"number\": 0}, {\"number\": 1}]', '{}', '2026-12-06')"))
    engine.dispose()
    with Database(url) as db:  # opening migrates to the head revision
        (row,) = rungs.fidelity_of(db, 1)
        assert row.partial is False and row.n_chosen is None and rungs.fidelity_runs(db, 1) == {}
