"""Storage URLs: which ones we accept, how they print (without passwords), and the engine settings for each."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..errors import UserError

DEFAULT_URL = "sqlite:///archsearch.db"
ALLOWED = "sqlite:///PATH (a local file) or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"


class StorageError(UserError):
    """A storage URL that cannot be used, or a database that cannot be reached or is not ours to change."""


def parse(url: str, label: str = "storage") -> URL:
    """Check a storage URL before anything is opened; `label` names where it came from (e.g. --storage)."""
    if not isinstance(url, str) or not url.strip():
        raise StorageError(f"{label} {url!r} is empty; allowed: {ALLOWED}")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:
        detail = ": the port is not a number" if isinstance(err, ValueError) else " is not a database URL"
        raise StorageError(f"{label} {redact(url)!r}{detail}; allowed: {ALLOWED}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StorageError(f"{label} {redact(url)!r}: backend {backend!r} is not supported; allowed: {ALLOWED}")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise StorageError(f"{label} {redact(url)!r}: port {parsed.port} is out of range; allowed: 1 .. 65535")
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parent = Path(parsed.database).expanduser().resolve().parent
        if not parent.is_dir():
            raise StorageError(f"{label} {redact(url)!r}: the folder {str(parent)!r} of the SQLite file does not exist")
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+" + _postgres_driver(url, label))
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StorageError(f"{label} {redact(url)!r}: an in-memory SQLite database cannot be shared between our "
                           "engine and Optuna's; give a file, e.g. sqlite:///archsearch.db")
    try:
        parsed.get_dialect().import_dbapi()
    except Exception as err:  # NoSuchModuleError (unknown driver name) or ImportError (driver not installed)
        raise StorageError(f"{label} {redact(url)!r}: driver {parsed.drivername!r} is not available "
                           f"({type(err).__name__}: {err}); allowed: {ALLOWED}, with psycopg or psycopg2 "
                           "installed for PostgreSQL") from None
    return parsed


def _postgres_driver(url: str, label: str = "storage") -> str:
    """SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; use whichever driver is installed."""
    import importlib.util

    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return driver
    raise StorageError(f"{label} {redact(url)!r} needs a PostgreSQL driver: pip install psycopg2-binary "
                       "(or archsearch[postgres])")


def sqlite_file(parsed: URL) -> Path | None:
    """The file of a SQLite URL (None for other backends)."""
    if not is_sqlite(parsed) or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def sqlite_sibling(url: str, suffix: str) -> Path | None:
    """`path/x{suffix}` beside the file of a SQLite URL `sqlite:///path/x.db`, for what belongs with a study's
    storage (compile caches, trial run folders); None for other databases or a URL that does not parse (opening
    the storage reports that)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return path.with_name(path.stem + suffix)


def safe_folder_name(name: str) -> str:
    """A study name as one folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study"


def checked_sqlite_file(parsed: URL, label: str = "storage", *, must_exist: bool) -> Path | None:
    """The file of a SQLite URL (None for other backends), refused when the path is something other than a file,
    or, with `must_exist`, when it is missing: a reader never creates a database, and SQLite would."""
    path = sqlite_file(parsed)
    if path is None:
        return None
    # One stat, not is_file() then exists(): another process may create the file between two checks.
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        if must_exist:
            raise StorageError(f"{label} {redact(parsed)!r}: no such SQLite file {str(path)!r} (nothing to read; it "
                               "is not created)") from None
        return path
    if not stat.S_ISREG(mode):
        raise StorageError(f"{label} {redact(parsed)!r}: {str(path)!r} is not a file")
    return path


def full_url(parsed: URL) -> str:
    """The URL as a string Optuna can open (password kept)."""
    return parsed.render_as_string(hide_password=False)


def redact(url: str | URL) -> str:
    """The URL as it may be printed: the password hidden."""
    try:
        return (url if isinstance(url, URL) else make_url(url)).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _redact_raw(str(url))


def _redact_raw(url: str) -> str:
    """A string SQLAlchemy cannot parse, with anything between '://USER:' and '@' hidden."""
    import re

    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def is_sqlite(url: str | URL) -> bool:
    return (url if isinstance(url, URL) else make_url(url)).get_backend_name() == "sqlite"


def engine_kwargs(url: str | URL, *, pool_size: int = 2) -> dict[str, Any]:
    """Settings for every engine we (and Optuna, through RDBStorage) open on `url`.

    PostgreSQL: a small pool per process with pre-ping, so many workers x (our engine + Optuna's + Optuna's
    heartbeat thread) stay far below the server's max_connections (100 by default) and a dropped connection is
    replaced instead of failing a trial. SQLite: a generous busy timeout, since several processes may write.
    """
    if is_sqlite(url):
        return {"connect_args": {"timeout": 60}}
    return {"pool_size": pool_size, "max_overflow": 2, "pool_pre_ping": True, "pool_recycle": 1800,
            "connect_args": {"connect_timeout": 10}}
