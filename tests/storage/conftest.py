"""Storage URLs for the conformance suite: a fresh SQLite file, and a freshly created PostgreSQL database that is
dropped afterwards (tests marked `postgres`, skipped when the server on 127.0.0.1:5432 is unreachable)."""

import uuid

import pytest

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
