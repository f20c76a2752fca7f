"""One storage suite, run against a SQLite file and a fresh PostgreSQL database."""

import csv
import io
import json
import threading

import optuna
import pytest
import sqlalchemy as sa

from archsearch.errors import UserError
from archsearch.storage import Database, StorageError, StudyMismatchError, head_revision
from archsearch.storage import records
from archsearch.storage.export import export
from archsearch.storage.models import VERSION_TABLE, Base


def _new_study(db, name="s", space_hash="h1", target=5):
    return records.ensure_study(db, name=name, space_hash=space_hash, study_file={"name": name},
                                objectives=[{"metric": "val_loss", "direction": "minimize"}],
                                n_trials_target=target, archsearch_version="test")


def test_opening_creates_our_tables_beside_optunas(storage_url):
    with Database(storage_url) as db:
        db.optuna_storage()
        tables = set(sa.inspect(db.engine).get_table_names())
        with db.engine.connect() as conn:
            ours = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            theirs = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert {"archsearch_studies", "archsearch_trials", "archsearch_ablations", "archsearch_ablation_runs"} <= tables
    assert {"studies", "trials", "trial_values", "trial_heartbeats"} <= tables
    assert ours == head_revision()
    assert theirs != ours  # two alembic histories, each in its own version table


def test_migrations_match_the_models(storage_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with Database(storage_url) as db, db.engine.connect() as conn:
        ours = {"include_object": lambda obj, name, type_, *a: (
            type_ != "table" or (name.startswith("archsearch_") and name != VERSION_TABLE))}
        diff = compare_metadata(MigrationContext.configure(conn, opts=ours), Base.metadata)
    assert diff == []


def test_concurrent_first_open_has_no_creation_race(storage_url):
    errors = []

    def open_one():
        try:
            with Database(storage_url) as db:
                db.optuna_storage(heartbeat_interval=5, grace_period=10)
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(err))

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_slots_are_reserved_atomically(storage_url):
    with Database(storage_url) as db:
        study = _new_study(db, target=7)
        got = []

        def grab():
            while records.take_slot(db, study.id, 7):
                got.append(1)

        threads = [threading.Thread(target=grab) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 7
        assert records.slots_taken(db, study.id) == 7
        records.release_slot(db, study.id)
        assert records.take_slot(db, study.id, 7) and not records.take_slot(db, study.id, 7)


def test_study_mismatch_is_refused_and_changes_nothing(storage_url):
    with Database(storage_url) as db:
        first = _new_study(db, space_hash="h1")
        with pytest.raises(StudyMismatchError, match="different search space"):
            _new_study(db, space_hash="h2", target=99)
        again = records.study_by_name(db, "s")
        assert (again.space_hash, again.n_trials_target, again.id) == ("h1", 5, first.id)


def test_trial_rows_roundtrip_and_export(storage_url, tmp_path):
    with Database(storage_url) as db:
        study = _new_study(db)
        row = records.start_trial(db, study_id=study.id, optuna_trial_id=11, number=0, params={"d_model": 64},
                                  retry_of=None, worker="host:1")
        records.update_trial(db, row, status="completed", objectives=[0.5], metrics={"val_loss": 0.5},
                             curve=[{"step": 1, "val_loss": 0.9}, {"step": 2, "val_loss": 0.5}],
                             spec={"name": "x", "blocks": {"M": {"kind": "mamba2"}}}, spec_hash="abc", n_params=1234,
                             budget={"budget:a10g": {"total_bytes": 10, "budget_bytes": 20}}, fits=True)
        row2 = records.start_trial(db, study_id=study.id, optuna_trial_id=12, number=1, params={"d_model": "big"},
                                   retry_of=None, worker="host:1")
        records.update_trial(db, row2, status="failed", error="RuntimeError: boom", traceback="Traceback ...")
        assert records.status_counts(db, study.id) == {"completed": 1, "failed": 1}
        stored = records.trials_of(db, study.id, ("completed",))[0]
        assert stored.curve[1] == {"step": 2, "val_loss": 0.5} and stored.n_params == 1234
        assert stored.finished_at is not None

        rows = json.loads(export(db, "json", None))
        assert [r["status"] for r in rows] == ["completed", "failed"]
        assert rows[0]["spec"]["blocks"]["M"]["kind"] == "mamba2"
        table = list(csv.DictReader(io.StringIO(export(db, "csv", None, study="s"))))
        assert table[0]["objective.val_loss"] == "0.5" and table[1]["error"] == "RuntimeError: boom"
        assert table[0]["param.d_model"] == "64" and table[1]["param.d_model"] == "big"

        out = tmp_path / "t.parquet"
        export(db, "parquet", out)
        import pyarrow.parquet as pq

        parquet = pq.read_table(out).to_pylist()
        assert [r["number"] for r in parquet] == [0, 1]
        assert parquet[0]["param.d_model"] == "64"  # mixed int/str column stored as text
        with pytest.raises(UserError, match="no study named 'nope'"):
            export(db, "json", None, study="nope")
        with pytest.raises(UserError, match="allowed: csv, json, parquet"):
            export(db, "xml", None)


def test_stored_study_opens_with_optuna_load_study(storage_url):
    with Database(storage_url) as db:
        storage = db.optuna_storage()
        study = optuna.create_study(storage=storage, study_name="plain", directions=["minimize", "maximize"])
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=2)
        url = db.url
    loaded = optuna.load_study(study_name="plain", storage=url)
    assert len(loaded.trials) == 2 and len(loaded.directions) == 2


@pytest.mark.parametrize("url, message", [
    ("postgresql://postgres@127.0.0.1:1/test", "cannot reach the database"),
    ("mysql://u@h/d", "backend 'mysql' is not supported"),
    ("not a url", "is not a database URL"),
    ("sqlite:///no/such/folder/x.db", "does not exist"),
    ("sqlite://", "in-memory SQLite"),
])
def test_bad_urls_are_clear_user_errors(url, message):
    with pytest.raises(StorageError, match=message):
        Database(url)


def test_password_is_not_printed():
    with pytest.raises(StorageError) as info:
        Database("postgresql://postgres:s3cret@127.0.0.1:1/test")
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
