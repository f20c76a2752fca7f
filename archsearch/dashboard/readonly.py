"""Open a results database so that nothing, not even a bug of ours, can write to it.

SQLite is opened through a `mode=ro` URI (the file must already exist; SQLite would otherwise create it).
PostgreSQL sessions start with `default_transaction_read_only=on`, the libpq form of
`SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`, so every transaction is read-only from the first one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from ..errors import first_line
from ..storage.urls import StorageError, checked_sqlite_file, is_sqlite, parse, redact


def parse_existing(url: str) -> URL:
    """The parsed URL (with the installed PostgreSQL driver named); a SQLite file must exist, since the dashboard
    never creates a database."""
    parsed = parse(url)
    checked_sqlite_file(parsed, must_exist=True)
    return parsed


def engine_kwargs(url: str) -> dict[str, Any]:
    """Keyword arguments for `sqlalchemy.create_engine(url, **kwargs)` that make every connection read-only."""
    parsed = parse_existing(url)
    if is_sqlite(parsed):
        # An absolute path keeps the URI valid whatever directory the server was started from.
        uri = "file:" + quote(str(Path(parsed.database).expanduser().resolve())) + "?mode=ro"
        return {"creator": lambda: sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)}
    return {"connect_args": {"options": "-c default_transaction_read_only=on", "connect_timeout": 10},
            "pool_pre_ping": True, "pool_size": 4}


def open_readonly(url: str) -> Engine:
    """A read-only engine on `url`, connected once so that a bad URL fails here with a clear message."""
    engine = sa.create_engine(parse_existing(url), **engine_kwargs(url))
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as err:
        engine.dispose()
        raise StorageError(f"storage {redact(url)!r}: cannot connect ({first_line(err)})") from None
    return engine
