"""Garment leases: the replica seeing a garment through to a published verdict, and until when.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("garments") as batch:
        batch.add_column(sa.Column("owner", sa.String(128)))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True)))
    op.create_index("garments_lease", "garments", ["status", "lease_until"])


def downgrade() -> None:
    op.drop_index("garments_lease", table_name="garments")
    with op.batch_alter_table("garments") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner")
