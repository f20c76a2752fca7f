"""Alembic environment for archsearch's tables only (Optuna migrates its own tables itself).

archsearch.storage.migrate passes an open connection in `config.attributes["connection"]`; run by hand, the URL
comes from `-x url=...` or the ini file.
"""

from alembic import context
from sqlalchemy import create_engine

from archsearch.storage.models import VERSION_TABLE, Base

config = context.config
target_metadata = Base.metadata


def _include_object(obj, name, type_, reflected, compare_to):
    # The database also holds Optuna's tables: autogenerate must only ever look at ours.
    if type_ == "table":
        return name.startswith("archsearch_")
    return True


def _configure(**kwargs) -> None:
    context.configure(target_metadata=target_metadata, version_table=VERSION_TABLE, render_as_batch=True,
                      include_object=_include_object, compare_type=True, **kwargs)


def run_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    _configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as conn:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
