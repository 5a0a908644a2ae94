"""Audit samples: a share of automatically settled garments also goes to people, blind, at low priority, so
the accuracy of automatic decisions is measured on an unbiased sample (issue 16).

``review_items.kind`` says why an item is in the queue: ``routed`` (the routing policy sent it to people; the
line waits on their decision) or ``audit`` (settled automatically and sampled; the decision is ground truth
only and changes no line command).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="routed"))


def downgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("kind")
