"""Is this database an archsearch results database at a schema revision we can read?"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import first_line
from ..storage.database import current_revision, head_revision
from ..storage.urls import StorageError, redact

REQUIRED_TABLES = ("archsearch_studies", "archsearch_trials")


def check_archsearch_database(engine: Engine) -> None:
    """Raise `StorageError` saying what is wrong; return quietly when the dashboard can read the database."""
    where = redact(engine.url) if engine.url.get_backend_name() != "sqlite" else repr(engine.url.database)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            revision = current_revision(conn) if "archsearch_alembic_version" in tables else None
    except sa.exc.DatabaseError as err:
        raise StorageError(f"storage {where} cannot be read as a database ({first_line(err)})") from None
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing or revision is None:
        raise StorageError(f"storage {where} is not an archsearch results database (no table "
                           f"{', '.join(missing) or 'archsearch_alembic_version'}); "
                           "`archsearch study run STUDY.yaml --storage URL` creates one")
    head = head_revision()
    if revision != head:
        hint = ("upgrade archsearch" if revision > head else
                "run any `archsearch study` command on it once to migrate it (the dashboard never writes)")
        raise StorageError(f"storage {where} has archsearch schema revision {revision}, this dashboard reads "
                           f"{head}; {hint}")
