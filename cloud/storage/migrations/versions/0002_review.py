"""Human review: queue-item claims, reviewers and their sessions, decisions, typed feedback, verified labels.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(64)))
        batch.add_column(sa.Column("claimed_at", TZ))
        batch.add_column(sa.Column("lease_expires_at", TZ))
        batch.add_column(sa.Column("decided_at", TZ))
    # A reviewer holds at most one item: two "take next" clicks at once cannot both claim.
    in_review = sa.text("status = 'in_review'")
    op.create_index(
        "review_items_one_per_reviewer",
        "review_items",
        ["claimed_by"],
        unique=True,
        sqlite_where=in_review,
        postgresql_where=in_review,
    )

    op.create_table(
        "reviewers",
        sa.Column("reviewer_id", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "review_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "reviewer_id",
            sa.String(64),
            sa.ForeignKey("reviewers.reviewer_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
    )
    op.create_index("review_sessions_reviewer", "review_sessions", ["reviewer_id"])
    op.create_table(
        "review_decisions",
        sa.Column(
            "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("reviewer_id", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("decided_at", TZ, nullable=False),
        sa.Column("ai_verdict_id", sa.String(64), nullable=False),
        sa.Column("ai_call", sa.String(8), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("verdict_id", sa.String(64), nullable=False),
        sa.Column("verdict", sa.JSON, nullable=False),
        sa.Column("published_at", TZ),
    )
    op.create_index("review_decisions_decided", "review_decisions", ["decided_at"])
    op.create_table(
        "review_feedback",
        sa.Column(
            "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("region_id", sa.String(64), primary_key=True),
        sa.Column("crop_id", sa.String(64)),
        sa.Column("view_index", sa.Integer, nullable=False),
        sa.Column("box", sa.JSON, nullable=False),
        sa.Column("ai_type", sa.String(48)),
        sa.Column("ai_severity", sa.String(8)),
        sa.Column("ai_decision", sa.String(8)),
        sa.Column("ai_score", sa.Float),
        sa.Column("human_type", sa.String(48), nullable=False),
        sa.Column("human_severity", sa.String(8), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("severity_agrees", sa.Boolean),
        sa.Column("reviewer_id", sa.String(64), nullable=False),
        sa.Column("decided_at", TZ, nullable=False),
    )
    op.create_index("review_feedback_decided", "review_feedback", ["decided_at"])
    op.create_table(
        "verified_labels",
        sa.Column(
            "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("region_id", sa.String(64), primary_key=True),
        sa.Column("crop_id", sa.String(64)),
        sa.Column("view_index", sa.Integer, nullable=False),
        sa.Column("box", sa.JSON, nullable=False),
        sa.Column("type", sa.String(48), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reviewer_id", sa.String(64), nullable=False),
        sa.Column("verified_at", TZ, nullable=False),
    )
    op.create_index("verified_labels_verified", "verified_labels", ["verified_at"])


def downgrade() -> None:
    op.drop_table("verified_labels")
    op.drop_table("review_feedback")
    op.drop_table("review_decisions")
    op.drop_table("review_sessions")
    op.drop_table("reviewers")
    op.drop_index("review_items_one_per_reviewer", "review_items")
    with op.batch_alter_table("review_items") as batch:
        for column in ("decided_at", "lease_expires_at", "claimed_at", "claimed_by"):
            batch.drop_column(column)
