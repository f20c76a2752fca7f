"""Hostile storage: a foreign SQLite database is refused untouched, a missing file is not created on read,
and bad URLs are clear StorageErrors naming the value."""

import sqlite3

import pytest

from archsearch.storage import Database
from archsearch.storage.urls import StorageError, parse


def _foreign(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE studies (id INTEGER PRIMARY KEY, title TEXT)")
    conn.execute("INSERT INTO studies (title) VALUES ('not ours')")
    conn.commit()
    conn.close()
    return path.read_bytes()


def test_foreign_sqlite_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "other.db"
    before = _foreign(path)
    with pytest.raises(StorageError) as info:
        Database(f"sqlite:///{path}")
    message = str(info.value)
    assert str(path) in message and "studies" in message and "not an archsearch or Optuna database" in message
    assert path.read_bytes() == before
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    assert tables == [("studies",)]


def test_archsearch_database_still_opens_and_reopens(tmp_path):
    url = f"sqlite:///{tmp_path / 'ours.db'}"
    with Database(url) as db:
        db.optuna_storage()
    with Database(url, create=False) as db:  # ours + Optuna's tables: accepted
        pass


def test_empty_sqlite_file_is_accepted(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with Database(f"sqlite:///{path}"):
        pass


def test_missing_file_is_not_created_by_a_reader(tmp_path):
    path = tmp_path / "missing.db"
    with pytest.raises(StorageError, match="no such SQLite file"):
        Database(f"sqlite:///{path}", create=False)
    assert not path.exists()


@pytest.mark.parametrize("url, fragment", [
    ("", "is empty"),
    ("postgresql://u:secret@localhost:99999/db", "port 99999 is out of range"),
    ("postgresql://u:secret@localhost:abc/db", "port is not a number"),
    ("mysql://u@localhost/db", "backend 'mysql' is not supported"),
    ("postgresql+asyncpg://u@localhost/db", "driver 'postgresql+asyncpg' is not available"),
    ("not a url", "is not a database URL"),
])
def test_bad_urls_are_clear(url, fragment):
    with pytest.raises(StorageError) as info:
        parse(url, "--storage")
    message = str(info.value)
    assert fragment in message and message.startswith("--storage") and "secret" not in message
