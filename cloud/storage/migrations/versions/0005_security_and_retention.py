"""Security and retention: reviewer roles (reviewer, admin), the login throttle every console replica shares,
and the audit trail of deleted garments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reviewers") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="reviewer"))
    op.create_table(
        "login_throttle",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "deletions",
        sa.Column("item_id", sa.String(128), primary_key=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.String(64), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("crop_uris", sa.JSON, nullable=False),
        sa.Column("crops_deleted_at", sa.DateTime(timezone=True)),
    )
    op.create_index("deletions_crops_pending", "deletions", ["crops_deleted_at"])


def downgrade() -> None:
    op.drop_index("deletions_crops_pending", table_name="deletions")
    op.drop_table("deletions")
    op.drop_table("login_throttle")
    with op.batch_alter_table("reviewers") as batch:
        batch.drop_column("role")
