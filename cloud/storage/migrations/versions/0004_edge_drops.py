"""Garments dropped at the edge: the reason, the edge's words, the line action and the drop time of a
``GarmentDropped`` record, kept on its garments row (status ``dropped_at_edge``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
COLUMNS = ("drop_reason", "drop_detail", "drop_line_action", "dropped_at")


def upgrade() -> None:
    with op.batch_alter_table("garments") as batch:
        batch.add_column(sa.Column("drop_reason", sa.String(32)))
        batch.add_column(sa.Column("drop_detail", sa.Text))
        batch.add_column(sa.Column("drop_line_action", sa.String(16)))
        batch.add_column(sa.Column("dropped_at", TZ))


def downgrade() -> None:
    # The older service resumes every garment not yet published and would classify these (no crops) and
    # publish verdicts for garments the line already diverted, so their rows go with their columns.
    op.execute(sa.text("DELETE FROM garments WHERE status = 'dropped_at_edge'"))
    with op.batch_alter_table("garments") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
