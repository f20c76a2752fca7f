"""Shared test settings: GPU tests skip themselves on machines without CUDA; storage URLs for the suites that
run against both SQLite and PostgreSQL (a fresh database per test on 127.0.0.1:5432, dropped afterwards)."""

import sys
import uuid
from pathlib import Path

import pytest

# `python -m pytest` puts the working directory first on sys.path; from the repository root that makes its
# kernels/ folder importable as a bare `kernels`, shadowing the PyPI package of that name that transformers imports
# (archsearch's own code reaches the folder as archsearch.kernels through the install, never by this path).
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT]

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def pg_url():
    """A freshly created PostgreSQL database, dropped afterwards; skips when the server is unreachable."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
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
    """The same test against a SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return request.getfixturevalue("pg_url")
