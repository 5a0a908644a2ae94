"""Garments, their crops, and the review queue (the schema issue 4 shipped with create_all).

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "garments",
        sa.Column("item_id", sa.String(128), primary_key=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.String(64), nullable=False),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("captured_at", TZ, nullable=False),
        sa.Column("deadline_at", TZ),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("detector_version", sa.String(128), nullable=False),
        sa.Column("views", sa.JSON, nullable=False),
        sa.Column("operator_note", sa.Text),
        sa.Column("sensor_readings", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("verdict_id", sa.String(64)),
        sa.Column("verdict", sa.JSON),
        sa.Column("classified_at", TZ),
        sa.Column("published_at", TZ),
    )
    op.create_index("garments_status", "garments", ["status", "received_at"])
    op.create_table(
        "crops",
        sa.Column(
            "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("crop_id", sa.String(64), primary_key=True),
        sa.Column("view_index", sa.Integer, nullable=False),
        sa.Column("box", sa.JSON, nullable=False),
        sa.Column("crop_box", sa.JSON, nullable=False),
        sa.Column("detector_score", sa.Float, nullable=False),
        sa.Column("detector_label", sa.String(64), nullable=False),
        sa.Column("encoding", sa.String(8), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("operator_note", sa.Text),
    )
    op.create_table(
        "review_items",
        sa.Column(
            "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.String(64), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("priority_rank", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("verdict_id", sa.String(64), nullable=False),
        sa.Column("queued_at", TZ, nullable=False),
    )
    op.create_index("review_items_queue", "review_items", ["status", "priority_rank", "queued_at"])


def downgrade() -> None:
    op.drop_table("review_items")
    op.drop_table("crops")
    op.drop_table("garments")
