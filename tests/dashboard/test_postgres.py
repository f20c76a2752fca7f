"""The dashboard over PostgreSQL: every session is read-only, and the pages read what the storage layer wrote."""

import uuid

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from archsearch.dashboard import create_app
from archsearch.dashboard.readonly import open_readonly
from archsearch.storage import Database, records

pytestmark = pytest.mark.postgres

ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_url():
    try:
        admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as err:  # noqa: BLE001 - any failure to reach the server means "skip"
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 unreachable: {err}")
    name = f"archsearch_dash_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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
    assert body["rows"][0]["pattern"] == [["M", "mamba2"], ["-", "mlp"]]
    assert client.get(f"/api/study/{study.id}/summary").json()["best"][0]["value"] == 1.25
