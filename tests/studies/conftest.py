"""Fixtures for the study tests: storage URLs (SQLite file, fresh PostgreSQL database), a toy evaluator that
trains a real (tiny, numpy) low-rank regression sized by the spec, and a study-file writer."""

import sys
import uuid
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # for `import studies_helpers` under --import-mode=importlib

from studies_helpers import study_doc  # noqa: E402

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _admin_engine():
    import sqlalchemy as sa

    return sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


@pytest.fixture
def pg_url():
    import sqlalchemy as sa

    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as err:  # noqa: BLE001 - any failure to reach the server means "skip"
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 unreachable: {err}")
    name = f"archsearch_test_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def write_study(tmp_path):
    def write(name="study.yaml", **overrides):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(study_doc(**overrides), sort_keys=False))
        return path

    return write


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'results.db'}"
