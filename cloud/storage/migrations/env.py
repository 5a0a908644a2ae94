"""Alembic environment: always run with a connection handed in by ``cloud.storage.schema.upgrade``.

The ML team can also run the Alembic CLI against this folder (``alembic -x url=... upgrade head`` with a
config whose ``script_location`` is ``cloud.storage:migrations``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from cloud.storage.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # the Alembic CLI: build an engine from -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
