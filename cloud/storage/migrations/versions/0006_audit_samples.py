"""Audit samples: a share of automatically settled garments also goes to people, blind, at low priority, so
the accuracy of automatic decisions is measured on an unbiased sample (issue 16).

``review_items.kind`` says why an item is in the queue: ``routed`` (the routing policy sent it to people; the
line waits on their decision), ``audit`` (settled automatically and sampled; the decision is ground truth only
and changes no line command) or ``passed_audit`` (the edge found nothing and passed it; its views were sent,
sampled, to measure the defects the detector misses). ``garments.purpose`` says what a garment was sent for
(``inspect``, or ``audit_passed``: never classified).

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
    with op.batch_alter_table("garments") as batch:
        batch.add_column(sa.Column("purpose", sa.String(16), nullable=False, server_default="inspect"))


def downgrade() -> None:
    with op.batch_alter_table("garments") as batch:
        batch.drop_column("purpose")
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("kind")
