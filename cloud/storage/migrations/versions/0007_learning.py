"""The learning loop (issue 16): golden sets no training uses, and the retraining worker's jobs.

``golden_sets`` / ``golden_items``: each frozen golden set (its hash, where its files are, its strata) and the
garments in it. ``learning_jobs``: one row per retraining job (trigger, data hash, gate result), with a
partial unique index so that at most one job runs at a time across worker processes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "golden_sets",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("garments", sa.Integer, nullable=False),
        sa.Column("labels", sa.Integer, nullable=False),
        sa.Column("strata", sa.JSON, nullable=False),
    )
    op.create_table(
        "golden_items",
        sa.Column(
            "sha256", sa.String(64), sa.ForeignKey("golden_sets.sha256", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("item_id", sa.String(128), primary_key=True),
    )
    op.create_index("golden_items_item", "golden_items", ["item_id"])
    op.create_table(
        "learning_jobs",
        sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("heartbeat_at", TZ, nullable=False),
        sa.Column("finished_at", TZ),
        sa.Column("worker", sa.String(128), nullable=False),
        sa.Column("triggers", sa.JSON, nullable=False),
        sa.Column("data_sha256", sa.String(64)),
        sa.Column("data_until", TZ),
        sa.Column("golden_sha256", sa.String(64)),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("report", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index(
        "learning_jobs_one_running",
        "learning_jobs",
        ["state"],
        unique=True,
        sqlite_where=sa.text("state = 'running'"),
        postgresql_where=sa.text("state = 'running'"),
    )
    op.create_index("learning_jobs_started", "learning_jobs", ["started_at"])


def downgrade() -> None:
    op.drop_table("learning_jobs")
    op.drop_table("golden_items")
    op.drop_table("golden_sets")
