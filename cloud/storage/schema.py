"""Bring an audit database to the newest schema with Alembic, safely when several services start at once.

Every service that opens the audit store (the classifier service, each review console) calls ``upgrade``,
unless a deployment migrates in a step of its own (``seamline cloud migrate``, ``cloud.migrate_on_start:
false``): the services then only check the revision (``require_head``).
PostgreSQL serialises them with an advisory lock, SQLite with a lock file next to the database. A database
made before migrations existed (issue 4's ``create_all``) is stamped at revision 0001 and upgraded from there.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from seamline.optional import require

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x5EA411E  # any constant shared by every Seamline process


def alembic_config(connection: sa.Connection | None = None):  # type: ignore[no-untyped-def]
    """An Alembic Config for the migrations in this package (bound to ``connection`` if given)."""
    purpose = "The audit store's schema migrations"
    Config = require("alembic.config", purpose, extra="cloud", package="alembic").Config
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_head(engine: sa.Engine) -> None:
    """Refuse a database whose schema is not the code's (``cloud.migrate_on_start: false``)."""
    from seamline.errors import ConfigError

    current, head = current_revision(engine), head_revision()
    if current != head:
        raise ConfigError(
            f"the audit store {engine.url.render_as_string(hide_password=True)} is at schema revision "
            f"{current or 'none (empty database)'}, this Seamline needs {head}: run `seamline cloud migrate "
            "--config FILE` first (or set cloud.migrate_on_start: true)"
        )


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (no-op when it is there already)."""
    from alembic import command

    with _migration_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        tables = set(sa.inspect(conn).get_table_names())
        config = alembic_config(conn)
        if "garments" in tables and "alembic_version" not in tables:
            logger.info("audit store predates migrations: stamping revision 0001")
            command.stamp(config, "0001")
        command.upgrade(config, revision)


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
