"""Model rollouts (issue 17): the rollout state's history and a shadow candidate's answers.

``rollouts``: one row per change of a model's rollout state (mode, share, champion and candidate), the
highest revision being the current one. ``shadow_answers``: what a shadow candidate answered for each crop.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("model", sa.String(16), primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False),
        sa.Column("set_at", TZ, nullable=False),
    )
    op.create_table(
        "shadow_answers",
        sa.Column(
            "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("crop_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(128), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("type", sa.String(48)),
        sa.Column("severity", sa.String(8)),
        sa.Column("decision", sa.String(8)),
        sa.Column("confidence", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("answered_at", TZ, nullable=False),
    )
    op.create_index("shadow_answers_answered", "shadow_answers", ["answered_at"])


def downgrade() -> None:
    op.drop_table("shadow_answers")
    op.drop_table("rollouts")
