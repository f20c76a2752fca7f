"""Open a results database: reach it (or say clearly why not), bring our tables to the latest migration, and
hand out sessions and the Optuna storage on the same database.

Several workers may open a fresh database at once. Both our migrations and Optuna's `create_all` would race
on table creation, so both run under one lock: a PostgreSQL advisory lock, or a file lock beside a SQLite file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import first_line
from .models import VERSION_TABLE
from .urls import StorageError, checked_sqlite_file, engine_kwargs, full_url, is_sqlite, parse, redact

# Any fixed 64-bit number, shared by every archsearch process: "archsear" in ASCII.
_ADVISORY_LOCK_KEY = 0x6172636873656172


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    if is_sqlite(engine.url):
        import fcntl

        lock_path = Path(engine.url.database).expanduser().resolve().with_name(
            Path(engine.url.database).name + ".lock")
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_LOCK_KEY})
            conn.commit()


def _opening_lock(engine: Engine):
    """SQLite: the first connections to a new file each switch it to WAL, and SQLite refuses that switch with
    "database is locked" (its busy timeout does not apply) while another connection is doing the same; so workers
    open a SQLite file one at a time. Nothing to do elsewhere, or where the lock file cannot be made (the
    connection then fails with the driver's own reason)."""
    database = engine.url.database
    if not is_sqlite(engine.url) or not database or database == ":memory:" \
            or not Path(database).expanduser().resolve().parent.is_dir():
        return contextlib.nullcontext()
    return _schema_lock(engine)


def _opening_lock_for(parsed):
    """The opening lock for a URL before our engine exists (SQLite: waits for a worker creating the file)."""
    if not is_sqlite(parsed):
        return contextlib.nullcontext()
    engine = sa.create_engine(parsed)
    try:
        return _opening_lock(engine)
    finally:
        engine.dispose()


def _alembic_config():
    from alembic.config import Config

    ini = resources.files("archsearch.storage.migrations") / "alembic.ini"
    config = Config(str(ini))
    config.set_main_option("script_location", str(Path(str(ini)).parent))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _upgrade(conn: Connection) -> None:
    from alembic import command

    config = _alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _tune_sqlite(engine: Engine) -> None:
    """WAL lets readers (the dashboard, other workers) run beside a writer, and synchronous=NORMAL syncs at WAL
    checkpoints instead of every commit: a committed trial survives a crash of the process, and at worst the last
    commits are lost on power failure. (WAL needs a local disk, not NFS.)"""

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # stored in the file: set once
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


# Optuna's RDB storage always has these two; a database holding them is Optuna's (ours may join it).
_OPTUNA_MARKERS = frozenset({"version_info", "studies"})


def _check_ours(parsed, shown: str) -> None:
    """Refuse, before anything is written, a database that has tables but neither archsearch's nor Optuna's:
    adding our tables to someone else's database would damage it (and Optuna would trip over a foreign
    `studies` table). Read-only: a plain engine without our pragmas, which would switch a SQLite file to WAL."""
    engine = sa.create_engine(parsed, **engine_kwargs(parsed))
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
    except (OperationalError, DBAPIError) as err:
        raise StorageError(f"cannot reach the database {shown}: {first_line(err)}") from None
    finally:
        engine.dispose()
    if not tables or VERSION_TABLE in tables or _OPTUNA_MARKERS <= tables:
        return
    listed = ", ".join(sorted(tables)[:8]) + (f" and {len(tables) - 8} more" if len(tables) > 8 else "")
    raise StorageError(f"the database {shown} is not an archsearch or Optuna database (it holds the table(s) "
                       f"{listed}); refusing to add tables to it: give a new SQLite file or an empty database")


class Database:
    """One results database: our engine and sessions, and Optuna's storage beside them.

    `create=False` (read-only commands): a missing SQLite file is an error instead of being created.
    `label` names where the URL came from in messages (e.g. "--storage").
    """

    def __init__(self, url: str, *, migrate: bool = True, create: bool = True, label: str = "storage"):
        self.parsed = parse(url, label)
        self.url = full_url(self.parsed)
        path = checked_sqlite_file(self.parsed, label, must_exist=not create)
        if path is None or (path.is_file() and path.stat().st_size > 0):
            with _opening_lock_for(self.parsed):
                _check_ours(self.parsed, redact(url))
        self.engine = sa.create_engine(self.parsed, **engine_kwargs(self.parsed))
        if is_sqlite(self.parsed):
            _tune_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            with _opening_lock(self.engine), self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                revision = current_revision(conn)
        except (OperationalError, DBAPIError) as err:
            self.engine.dispose()
            raise StorageError(f"cannot reach the database {redact(url)}: {first_line(err)}") from None
        head = head_revision()
        if revision != head:
            if revision is not None and revision > head:
                self.engine.dispose()
                raise StorageError(f"the database {redact(url)} has archsearch schema revision {revision}, newer than "
                                   f"this archsearch knows ({head}); upgrade archsearch")
            if not migrate:
                self.engine.dispose()
                raise StorageError(f"the database {redact(url)} has no archsearch tables (revision {revision})")
            self.migrate()

    def migrate(self) -> None:
        with _schema_lock(self.engine):
            with self.engine.begin() as conn:
                if current_revision(conn) != head_revision():  # another worker may have done it meanwhile
                    _upgrade(conn)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any exception."""
        with self._sessions() as session:
            with session.begin():
                yield session

    def optuna_storage(self, *, heartbeat_interval: int | None = None, grace_period: int | None = None,
                       max_retry: int | None = 3):
        """Optuna's RDB storage on the same database; a worker whose heartbeat stops gets its trial failed and,
        up to `max_retry` times, queued again with the same parameters."""
        import warnings

        import optuna

        callback = None
        if heartbeat_interval is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        with _schema_lock(self.engine), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                storage = optuna.storages.RDBStorage(
                    self.url, engine_kwargs=engine_kwargs(self.parsed), heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period, heartbeat_stale_trial_callback=callback)
            except (OperationalError, DBAPIError) as err:
                raise StorageError(f"cannot open Optuna's tables in {redact(self.url)}: {first_line(err)}") \
                    from None
        if is_sqlite(self.parsed):
            _tune_sqlite(storage.engine)
            storage.engine.dispose()  # pooled connections predate the pragmas
        return storage

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def worker_id() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
