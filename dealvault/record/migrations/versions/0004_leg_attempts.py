"""leg_attempts: every transaction signed for a leg (issue 13: EIP-1559 replace-by-fee and cancels
need several hashes per leg). Existing legs get their one transaction as attempt "leg".

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leg_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("leg_id", sa.Integer, sa.ForeignKey("legs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("deal_id", sa.String(64), sa.ForeignKey("deals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("raw_tx", sa.Text, nullable=False),
        sa.Column("nonce", sa.BigInteger, nullable=False),
        sa.Column("fees", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("deal_id", "tx_hash", name="uq_leg_attempts_deal_tx_hash"),
        sa.CheckConstraint("kind IN ('leg', 'replacement', 'cancel')", name="ck_leg_attempts_kind"),
    )
    op.create_index("ix_leg_attempts_leg_id", "leg_attempts", ["leg_id"])
    op.execute(
        "INSERT INTO leg_attempts (leg_id, deal_id, kind, tx_hash, raw_tx, nonce, created_at) "
        "SELECT id, deal_id, 'leg', tx_hash, raw_tx, nonce, COALESCE(signed_at, created_at) FROM legs "
        "WHERE tx_hash IS NOT NULL AND raw_tx IS NOT NULL AND nonce IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_leg_attempts_leg_id", "leg_attempts")
    op.drop_table("leg_attempts")
