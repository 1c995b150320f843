"""legs.tx_hash unique per deal, not across deals (issue 13): a mirror restarted from the same
state signs byte-identical transactions for a new deal; the same transaction twice within one
deal is still refused.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("legs") as batch:
        batch.drop_constraint("uq_legs_tx_hash", type_="unique")
        batch.create_unique_constraint("uq_legs_deal_tx_hash", ["deal_id", "tx_hash"])


def downgrade() -> None:
    with op.batch_alter_table("legs") as batch:
        batch.drop_constraint("uq_legs_deal_tx_hash", type_="unique")
        batch.create_unique_constraint("uq_legs_tx_hash", ["tx_hash"])
