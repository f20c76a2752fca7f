"""Open a results database so that nothing, not even a bug of ours, can write to it.

SQLite is opened through a `mode=ro` URI (the file must already exist; SQLite would otherwise create it).
PostgreSQL sessions start with `default_transaction_read_only=on`, the libpq form of
`SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`, so every transaction is read-only from the first one.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from ..storage.urls import StorageError, is_sqlite, parse, redact


def parse_existing(url: str) -> URL:
    """The parsed URL; for SQLite the file must exist, since the dashboard never creates a database."""
    parsed = parse(url)
    if is_sqlite(parsed):
        path = Path(parsed.database).expanduser()
        if not path.is_file():
            raise StorageError(f"storage {url!r}: the SQLite file {str(path)!r} does not exist")
    return parsed


def driver_url(parsed: URL) -> URL:
    """Plain `postgresql://` means psycopg (3) to SQLAlchemy 2.1; use psycopg2 when only that is installed."""
    if parsed.drivername != "postgresql":
        return parsed
    for module, driver in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return parsed.set(drivername=driver)
    raise StorageError(f"storage {redact(parsed)!r}: no PostgreSQL driver is installed; "
                       "pip install 'archsearch[postgres]'")


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
    engine = sa.create_engine(driver_url(parse_existing(url)), **engine_kwargs(url))
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as err:
        engine.dispose()
        reason = str(err.orig).strip().splitlines()[0] if err.orig is not None else type(err).__name__
        raise StorageError(f"storage {redact(url)!r}: cannot connect ({reason})") from None
    return engine
