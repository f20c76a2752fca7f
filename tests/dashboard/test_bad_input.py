"""Bad storage URLs and databases that are not ours: one clear message (CLI exit 2), never a traceback; and the
dashboard never writes, even to a database it can read."""

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from archsearch.dashboard import create_app
from archsearch.dashboard.readonly import open_readonly
from archsearch.storage import StorageError

from dashboard_helpers import store_rows


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "archsearch.cli", "dashboard", *args], capture_output=True,
                          text=True, timeout=120)


def _optuna_only(path: Path) -> str:
    import optuna

    url = f"sqlite:///{path}"
    optuna.create_study(study_name="plain", storage=url)
    return url


@pytest.mark.parametrize("make, message", [
    (lambda tmp: f"sqlite:///{tmp / 'missing.db'}", "no such SQLite file"),
    (lambda tmp: (tmp / "folder.db").mkdir() or f"sqlite:///{tmp / 'folder.db'}", "is not a file"),
    (lambda tmp: "mysql://u@localhost/x", "backend 'mysql' is not supported"),
    (lambda tmp: "not a url", "is not a database URL"),
    (lambda tmp: (tmp / "text.db").write_text("hello") and f"sqlite:///{tmp / 'text.db'}",
     "cannot be read as a database"),
    (lambda tmp: sqlite3.connect(tmp / "empty.db").close() or f"sqlite:///{tmp / 'empty.db'}",
     "is not an archsearch results database"),
    (lambda tmp: _optuna_only(tmp / "optuna.db"), "is not an archsearch results database"),
])
def test_a_bad_storage_is_a_clear_cli_error(tmp_path, make, message):
    url = make(tmp_path)
    with pytest.raises(StorageError, match=message):
        create_app(url)
    done = _cli("--storage", url, "--port", "1")
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr + done.stdout


def test_an_unreachable_postgresql_is_a_clear_cli_error():
    done = _cli("--storage", "postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 2 and "cannot connect" in done.stderr and "Traceback" not in done.stderr


def test_the_engine_refuses_writes_and_serving_changes_no_byte(study_copy):
    path = Path(study_copy.removeprefix("sqlite:///"))
    # The database file and its write-ahead log are what a writer changes. A reader may create an empty log
    # (and the -shm index), which holds no change: missing and empty count the same.
    files = [path, Path(f"{path}-wal"), Path(f"{path}-journal")]

    def digest():
        return [hashlib.sha256(f.read_bytes()).hexdigest() if f.exists() and f.stat().st_size else None
                for f in files]

    before = digest()
    engine = open_readonly(study_copy)
    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
        conn.execute(sa.text("UPDATE archsearch_studies SET name = 'changed'"))
    from starlette.testclient import TestClient

    client = TestClient(create_app(study_copy))
    study_id = client.get("/api/study/1/summary").json()["id"]
    for url in ["/", f"/study/{study_id}", f"/api/study/{study_id}/trials", f"/api/study/{study_id}/pareto",
                f"/api/study/{study_id}/importance", f"/study/{study_id}/compare?t=1&t=2"]:
        assert client.get(url).status_code == 200, url
    assert digest() == before


def test_importance_without_optuna_tables_is_a_reason_not_an_error(tmp_path):
    """Our tables written, Optuna's never (a study stored by another tool): the page says why, no 500."""
    from starlette.testclient import TestClient

    url = f"sqlite:///{tmp_path / 'ours-only.db'}"
    study_id = store_rows(url, "ours-only", [(n, None, "completed", [1.0 / (n + 1)]) for n in range(6)],
                          n_trials_target=6)
    client = TestClient(create_app(url), raise_server_exceptions=False)
    body = client.get(f"/api/study/{study_id}/importance").json()
    assert body["figure"] is None and "Optuna's record of this study could not be read" in body["reason"]
    assert client.get(f"/study/{study_id}").status_code == 200
