"""A fresh, empty PostgreSQL database, dropped after use.

On the server at 127.0.0.1:5432 (user postgres, trust) when one answers; otherwise on an embedded PostgreSQL
(the ``pgserver`` wheel of the dev extra: real PostgreSQL binaries, started once per process over a Unix
socket in a temporary folder and stopped at exit), so the PostgreSQL tests also run on a fresh machine.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_embedded: dict[str, str] = {}  # "url" -> the embedded server's admin URL, once started


def _answers(url: str) -> bool:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure to reach the server means "not here"
        return False
    finally:
        engine.dispose()


def _embedded_admin_url() -> str | None:
    """Start (once) an embedded PostgreSQL; None when the pgserver wheel is not installed."""
    if "url" in _embedded:
        return _embedded["url"]
    try:
        import pgserver
    except ImportError:
        return None
    pgdata = tempfile.mkdtemp(prefix="seamline-pg-")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")

    def stop() -> None:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)

    atexit.register(stop)
    # pgserver listens on a Unix socket in pgdata; psycopg takes its folder as host
    _embedded["url"] = f"postgresql+psycopg://postgres@/postgres?host={pgdata}"
    return _embedded["url"]


def postgres_admin_url() -> str | None:
    """The admin URL of the local server if one answers, else of the embedded one; None if neither."""
    if _answers(ADMIN_URL):
        return ADMIN_URL
    return _embedded_admin_url()


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str | None]:
    """A new empty database's URL, dropped on exit; None when no PostgreSQL can be had."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        yield None
        return
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"seamline_test_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
