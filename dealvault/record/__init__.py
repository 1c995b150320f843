"""The deal record: the audit trail of every deal, leg (on-chain transaction) and tranche.

SQLAlchemy 2 over SQLite by default (``<project>/.dealvault/deals.db``) or PostgreSQL via
``DATABASE_URL``; the schema is versioned by the Alembic migrations in ``migrations/`` and
upgraded to head by :func:`open_record`.

    from dealvault.record import open_record
    rec = open_record()
    with rec.lock(spec.deal_id):
        deal = rec.create_deal(spec, exist_ok=True)
        leg = rec.record_signed(deal, step=1, leg="supply", raw_tx=raw, nonce=n, tx_hash=h)  # before sending
        rec.mark_broadcast(leg)
        rec.mark_confirmed(leg, receipt, leg_seq=seq, snapshot_after=risk_view)
"""

from dealvault.record.lock import DealLocked, RecordError, host_lock_dir, host_vault_lock, vault_lock_name
from dealvault.record.models import LEG_STATUSES
from dealvault.record.stats import wilson_lower_bound
from dealvault.record.store import (
    AttemptInfo,
    DealInfo,
    LegInfo,
    Record,
    RungStats,
    TrancheInfo,
    TrancheStats,
    default_url,
    head_revision,
    normalize_url,
    open_record,
    upgrade,
)

__all__ = [
    "LEG_STATUSES",
    "AttemptInfo",
    "DealInfo",
    "DealLocked",
    "LegInfo",
    "Record",
    "RecordError",
    "RungStats",
    "TrancheInfo",
    "TrancheStats",
    "default_url",
    "host_lock_dir",
    "host_vault_lock",
    "head_revision",
    "normalize_url",
    "open_record",
    "upgrade",
    "vault_lock_name",
    "wilson_lower_bound",
]
