"""deals.lens_address: the DealVaultLens a deal reads its vault through (DealVault v2)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deals") as batch:
        batch.add_column(sa.Column("lens_address", sa.String(42)))


def downgrade() -> None:
    with op.batch_alter_table("deals") as batch:
        batch.drop_column("lens_address")
