"""guard_leases: which guard process watches a deal (issue 15: several guards share the deals of
one PostgreSQL record; the lease is an advisory lock, this row names its holder).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guard_leases",
        sa.Column("deal_id", sa.String(64), primary_key=True),
        sa.Column("guard_id", sa.String(255), nullable=False),
        sa.Column("lock_key", sa.BigInteger, nullable=False),
        sa.Column("backend_pid", sa.Integer, nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("guard_leases")
