"""initial schema: deals, legs, tranches, deal_locks

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dealvault.record.models import LEG_STATUSES, UInt256

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("network", sa.String(128), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("genesis_hash", sa.String(66)),
        sa.Column("vault_address", sa.String(42)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "legs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("deal_id", sa.String(64), sa.ForeignKey("deals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("leg_seq", sa.BigInteger()),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("leg", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("args", sa.JSON()),
        sa.Column("raw_tx", sa.Text()),
        sa.Column("nonce", sa.BigInteger()),
        sa.Column("tx_hash", sa.String(66)),
        sa.Column("sender", sa.String(42)),
        sa.Column("block_number", sa.BigInteger()),
        sa.Column("gas_used", sa.BigInteger()),
        sa.Column("effective_gas_price", UInt256()),
        sa.Column("risk_before", sa.JSON()),
        sa.Column("risk_after", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True)),
        sa.Column("broadcast_at", sa.DateTime(timezone=True)),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("deal_id", "leg_seq", name="uq_legs_deal_leg_seq"),
        sa.UniqueConstraint("tx_hash", name="uq_legs_tx_hash"),
        sa.CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in LEG_STATUSES) + ")", name="ck_legs_status"),
    )
    op.create_index("ix_legs_deal_id", "legs", ["deal_id"])
    op.create_table(
        "tranches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("deal_id", sa.String(64), sa.ForeignKey("deals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("leg_id", sa.Integer(), sa.ForeignKey("legs.id", ondelete="SET NULL")),
        sa.Column("rung", sa.Integer(), nullable=False),
        sa.Column("size", UInt256(), nullable=False),
        sa.Column("received", UInt256(), nullable=False),
        sa.Column("fee", UInt256(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tranches_deal_id", "tranches", ["deal_id"])
    op.create_table(
        "deal_locks",
        sa.Column("deal_id", sa.String(64), primary_key=True),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deal_locks")
    op.drop_index("ix_tranches_deal_id", table_name="tranches")
    op.drop_table("tranches")
    op.drop_index("ix_legs_deal_id", table_name="legs")
    op.drop_table("legs")
    op.drop_table("deals")
