"""The deal record, against SQLite and a real PostgreSQL server.

PostgreSQL comes from ``DATABASE_URL`` (``eval "$(.ci/postgres.sh)"`` sets one up); each test gets
its own schema, so it starts from an empty database. Without ``DATABASE_URL`` the PostgreSQL
cases are skipped, saying why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from helpers_db import BACKENDS, PG_SKIP_REASON, db_factory, pg_enabled
from sqlalchemy import create_engine, inspect, text

from dealvault.record import (
    DealLocked,
    RecordError,
    head_revision,
    normalize_url,
    open_record,
    wilson_lower_bound,
)
from dealvault.record.models import Base
from dealvault.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]

if not pg_enabled():
    print(f"\n{PG_SKIP_REASON}", file=sys.stderr)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """An empty database: a fresh SQLite file, or a fresh schema on the PostgreSQL server."""
    with db_factory(request.param, tmp_path) as make:
        yield make()


@pytest.fixture
def record(db_url):
    rec = open_record(db_url)
    yield rec
    rec.close()


@pytest.fixture
def spec():
    return load_spec(ROOT / "deals" / "example.yaml")


def unique_id() -> str:
    """Deal ids are lock keys server-wide on PostgreSQL: keep tests apart."""
    return f"t-{uuid.uuid4().hex[:16]}"


def h(n: int) -> str:
    return "0x" + f"{n:064x}"


# ------------------------------------------------------------------------------- schema


def test_schema_migrates_from_empty(db_url):
    engine = create_engine(normalize_url(db_url))
    assert inspect(engine).get_table_names() == []
    rec = open_record(db_url)
    try:
        assert rec.schema_revision() == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"deals", "legs", "tranches", "deal_locks", "alembic_version"} <= tables
        cols = {c["name"] for c in inspect(engine).get_columns("legs")}
        assert {"leg_seq", "step", "leg", "status", "raw_tx", "nonce", "tx_hash", "sender", "block_number",
                "gas_used", "risk_before", "risk_after", "error", "created_at", "updated_at"} <= cols
    finally:
        rec.close()
    # opening again is a no-op
    rec = open_record(db_url)
    assert rec.schema_revision() == head_revision()
    rec.close()
    engine.dispose()


def test_upgrade_from_0001_keeps_deals_and_adds_the_lens(db_url, spec):
    """A record created before DealVault v2 (schema 0001): opening it upgrades to head, its deals
    are kept (lens_address NULL) and the lens can be recorded."""
    from dealvault.record import upgrade as upgrade_to

    engine = create_engine(normalize_url(db_url))
    upgrade_to(engine, "0001")
    assert "lens_address" not in {c["name"] for c in inspect(engine).get_columns("deals")}
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO deals (id, spec, network, chain_id, status, created_at, updated_at) "
                          "VALUES ('old-deal', '{}', 'chain138-local', 138, 'completed', :t, :t)"),
                     {"t": "2026-01-01 00:00:00+00:00"})
    engine.dispose()
    rec = open_record(db_url)
    try:
        assert rec.schema_revision() == head_revision() == "0005"
        old = rec.get_deal("old-deal")
        assert (old.status, old.chain_id, old.lens_address) == ("completed", 138, None)
        assert rec.update_deal("old-deal", lens_address="0x" + "78" * 20).lens_address == "0x" + "78" * 20
    finally:
        rec.close()


def test_models_match_the_migrations(record):
    """The ORM models and the head migration describe the same schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with record.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_default_url_is_sqlite_in_the_project_unless_database_url(monkeypatch):
    from dealvault.record import default_url

    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert default_url() == f"sqlite:///{ROOT / '.dealvault' / 'deals.db'}"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@h/db")
    assert default_url() == "postgresql://u:p@h/db"
    assert normalize_url(default_url()) == "postgresql+psycopg://u:p@h/db"


def test_open_record_takes_url_from_database_url(monkeypatch, db_url):
    monkeypatch.setenv("DATABASE_URL", db_url)
    rec = open_record()
    try:
        assert rec.schema_revision() == head_revision()
        assert rec.dialect == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
    finally:
        rec.close()


def test_concurrent_first_opens_migrate_once(db_url):
    """Several processes opening an empty database at once: all succeed, one schema."""
    code = "import sys; from dealvault.record import open_record; r = open_record(sys.argv[1]); print(r.schema_revision())"
    procs = [subprocess.Popen([sys.executable, "-c", code, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-2000:] for o in outs]
    assert {o[0].strip() for o in outs} == {head_revision()}


# ------------------------------------------------------------------------------- deals


def test_create_and_get_deal(record, spec):
    deal = record.create_deal(spec, deal_id=unique_id(), genesis_hash=bytes.fromhex("ab" * 32))
    got = record.get_deal(deal.id)
    assert got == deal
    assert got.network == "chain138-local" and got.chain_id == 138
    assert got.genesis_hash == "0x" + "ab" * 32
    assert got.vault_address is None and got.status == "created"
    assert got.spec["capital_wei"] == 5000 * 10**18 and got.spec["vault"]["sell_floor_price"] == "0.85"
    assert got.created_at.tzinfo is not None
    with pytest.raises(RecordError, match="already recorded"):
        record.create_deal(spec, deal_id=deal.id)
    assert record.create_deal(spec, deal_id=deal.id, exist_ok=True) == deal
    assert record.get_deal("nope") is None
    upd = record.update_deal(deal, status="running", vault_address="0x" + "12" * 20)
    assert (upd.status, upd.vault_address) == ("running", "0x" + "12" * 20)
    # DealVault v2: the lens the deal reads its vault through (none until the orchestrator records it)
    assert upd.lens_address is None
    upd = record.update_deal(deal, lens_address="0x" + "34" * 20)
    assert upd.lens_address == "0x" + "34" * 20 and record.get_deal(deal.id).lens_address == "0x" + "34" * 20
    other = record.create_deal(spec, deal_id=unique_id(), lens_address="0x" + "56" * 20)
    assert record.get_deal(other.id).lens_address == "0x" + "56" * 20
    with pytest.raises(RecordError, match="cannot change"):
        record.update_deal(deal, chain_id=1)


# ------------------------------------------------------------------------------- legs


def test_leg_lifecycle(record, spec):
    deal = record.create_deal(spec, deal_id=unique_id())
    risk_before = {"ltvBps": 0, "nav": 15_000_000 * 10**8, "price": Decimal("3000.5")}
    planned = record.plan_leg(deal, 0, "split", args={"note": "first"}, risk_before=risk_before)
    assert planned.status == "planned" and planned.tx_hash is None
    assert planned.risk_before == {"ltvBps": 0, "nav": 15_000_000 * 10**8, "price": "3000.5"}

    signed = record.record_signed(deal, 0, "split", "0x02f8deadbeef", 7, h(1),
                                  sender="0x" + "aa" * 20, planned=planned)
    assert signed.id == planned.id and signed.status == "signed"
    assert (signed.raw_tx, signed.nonce, signed.tx_hash) == ("0x02f8deadbeef", 7, h(1))
    assert signed.signed_at is not None
    # persisted before broadcast: a fresh handle sees it
    assert record.get_leg(h(1)).status == "signed"
    # idempotent for the same hash and raw tx; a different raw tx under the same hash is refused
    assert record.record_signed(deal, 0, "split", "0x02f8DEADBEEF", 7, h(1)).id == signed.id
    with pytest.raises(RecordError, match="already recorded"):
        record.record_signed(deal, 0, "split", "0x02f8aa", 7, h(1))

    b = record.mark_broadcast(signed)
    assert b.status == "broadcast" and b.broadcast_at is not None
    assert record.mark_broadcast(h(1)).status == "broadcast"  # idempotent

    receipt = {"transactionHash": bytes.fromhex("00" * 31 + "01"), "status": 1, "blockNumber": 42,
               "gasUsed": 81_234, "effectiveGasPrice": 2 * 10**9}
    after = {"ltvBps": 0, "coreEth": 2500 * 10**18, "legSeq": 1}
    c = record.mark_confirmed(b, receipt, leg_seq=1, snapshot_after=after)
    assert (c.status, c.block_number, c.gas_used, c.effective_gas_price, c.leg_seq) == ("confirmed", 42, 81_234, 2 * 10**9, 1)
    assert c.risk_after == after and c.risk_before == planned.risk_before and c.confirmed_at is not None
    assert record.mark_confirmed(c, receipt, leg_seq=1).status == "confirmed"  # idempotent
    with pytest.raises(RecordError, match="cannot mark it broadcast"):
        record.mark_broadcast(c)
    with pytest.raises(RecordError, match="cannot mark it failed"):
        record.mark_failed(c, "late")
    assert record.pending_legs(deal) == []
    assert record.last_leg_seq(deal) == 1

    # an ape-style receipt object, with a reverted status
    class Receipt:
        txn_hash = h(2)
        status = 0
        block_number = 43
        gas_used = 30_000
        gas_price = 10**9

    leg2 = record.record_signed(deal, 1, "supply", "0x02f9", 8, h(2), args={"amount": 1500 * 10**18})
    rev = record.mark_confirmed(leg2, Receipt(), leg_seq=None)
    assert (rev.status, rev.block_number, rev.leg_seq, rev.error) == ("reverted", 43, None, "transaction reverted")
    assert rev.args == {"amount": 1500 * 10**18}

    # a receipt for another transaction is refused
    leg3 = record.record_signed(deal, 1, "supply", "0x02fa", 9, h(3))
    with pytest.raises(RecordError, match="receipt is for"):
        record.mark_confirmed(leg3, {"transactionHash": h(99), "status": 1, "blockNumber": 1, "gasUsed": 1}, 2)
    failed = record.mark_failed(leg3, "RPC: connection refused")
    assert failed.status == "failed" and "connection refused" in failed.error
    # the chain is the truth: a failed leg later found mined is confirmed
    ok = record.mark_confirmed(leg3, {"transactionHash": h(3), "status": 1, "blockNumber": 44, "gasUsed": 5}, 2)
    assert ok.status == "confirmed" and ok.error is None

    # legSeq is unique per deal
    leg4 = record.record_signed(deal, 2, "borrow", "0x02fb", 10, h(4))
    with pytest.raises(RecordError, match="legSeq 2 is already recorded"):
        record.mark_confirmed(leg4, {"status": 1, "blockNumber": 45, "gasUsed": 5}, 2)
    assert record.get_leg(leg4).status == "signed"

    assert [leg.leg for leg in record.legs(deal)] == ["split", "supply", "supply", "borrow"]
    with pytest.raises(RecordError, match="unknown leg"):
        record.mark_broadcast(h(1234))
    with pytest.raises(RecordError, match="unknown deal"):
        record.record_signed("no-such-deal", 0, "split", "0x01", 0, h(5))


def test_pending_legs_on_resume(db_url, spec):
    """A crash between broadcast and receipt: a new process finds the signed/broadcast legs,
    in order, with the raw transaction and nonce needed to rebroadcast."""
    rec = open_record(db_url)
    deal = rec.create_deal(spec, deal_id=unique_id())
    done = rec.record_signed(deal, 0, "split", "0x01", 0, h(10))
    rec.mark_confirmed(done, {"status": 1, "blockNumber": 1, "gasUsed": 1}, 1)
    rec.record_signed(deal, 1, "supply", "0x02", 1, h(11))  # signed, never sent
    b = rec.record_signed(deal, 2, "borrow", "0x03", 2, h(12))
    rec.mark_broadcast(b)  # sent, no receipt yet
    f = rec.record_signed(deal, 2, "borrow", "0x04", 2, h(13))
    rec.mark_failed(f, "replaced")
    rec.plan_leg(deal, 3, "buy")
    other = rec.create_deal(spec, deal_id=unique_id())
    rec.record_signed(other, 0, "split", "0x05", 0, h(14))
    rec.close()

    rec = open_record(db_url)  # the resuming process
    try:
        pending = rec.pending_legs(deal.id)
        assert [(p.leg, p.status, p.nonce, p.raw_tx, p.tx_hash) for p in pending] == [
            ("supply", "signed", 1, "0x02", h(11)),
            ("borrow", "broadcast", 2, "0x03", h(12)),
        ]
        assert [p.tx_hash for p in rec.pending_legs(other.id)] == [h(14)]
        rec.mark_confirmed(pending[0], {"status": 1, "blockNumber": 2, "gasUsed": 1}, 2)
        assert [p.tx_hash for p in rec.pending_legs(deal.id)] == [h(12)]
    finally:
        rec.close()


# ------------------------------------------------------------------------------- tranches


def test_tranche_stats(record, spec):
    deal = record.create_deal(spec, deal_id=unique_id())
    empty = record.tranche_stats(deal)
    assert (empty.attempted, empty.success_rate, empty.wilson_lower, empty.last_ok) == (0, 0, 0, None)

    leg = record.record_signed(deal, 4, "redeem", "0x01", 0, h(20))
    e6 = 10**6
    record.add_tranche(deal, 0, 50_000 * e6, 49_975 * e6, 25 * e6, True, leg=leg)
    record.add_tranche(deal, 1, 250_000 * e6, 249_875 * e6, 125 * e6, True)
    record.add_tranche(deal, 2, 1_000_000 * e6, 999_500 * e6, 500 * e6, True)
    record.add_tranche(deal, 2, 330_000 * e6, 0, 0, False, reason="desk reverted: paused")
    s = record.tranche_stats(deal)
    assert (s.attempted, s.succeeded, s.failed) == (4, 3, 1)
    assert s.success_rate == Decimal("0.75")
    # Wilson lower bound for 3/4 at z=1.96: 0.300636... (hand-checked)
    assert abs(s.wilson_lower - Decimal("0.300636")) < Decimal("0.000001")
    assert s.size_total == 1_630_000 * e6 and s.received_total == 1_299_350 * e6 and s.fee_total == 650 * e6
    assert s.by_rung[2].attempted == 2 and s.by_rung[2].succeeded == 1 and s.by_rung[0].size == 50_000 * e6
    assert s.highest_rung_ok == 2 and s.last_ok is False
    ts = record.tranches(deal)
    assert ts[0].leg_id == leg.id and ts[3].reason == "desk reverted: paused" and ts[3].ok is False
    assert all(isinstance(t.size, int) for t in ts)
    with pytest.raises(RecordError, match="size must be a non-negative int"):
        record.add_tranche(deal, 0, Decimal("1.5"), 0, 0, True)


def test_amounts_beyond_64_bits_are_exact(record, spec):
    deal = record.create_deal(spec, deal_id=unique_id())
    big = 2**256 - 1
    t = record.add_tranche(deal, 0, big, big - 1, 1, True)
    assert record.tranches(deal)[0].size == big == t.size
    assert record.tranche_stats(deal).received_total == big - 1


@pytest.mark.parametrize(
    "successes, trials, expected",
    [
        (5, 5, Decimal("0.565508")),  # 1 / (1 + 1.96²/5)
        (1, 1, Decimal("0.206543")),  # 1 / (1 + 1.96²)
        (0, 5, Decimal("0")),
        (0, 0, Decimal("0")),
        (8, 10, Decimal("0.490157")),
        (50, 100, Decimal("0.403830")),
        (3, 4, Decimal("0.300636")),
    ],
)
def test_wilson_lower_bound(successes, trials, expected):
    got = wilson_lower_bound(successes, trials)
    assert isinstance(got, Decimal)
    assert abs(got - expected) < Decimal("0.000001"), got
    assert got <= Decimal(successes) / trials if trials else got == 0


def test_wilson_lower_bound_exact_and_conservative():
    # 5/5: (1 + z²/10 - z·sqrt(z²/100)) / (1 + z²/5) = 1 / (1 + z²/5) exactly
    exact = Decimal(1) / (1 + Decimal("1.96") ** 2 / 5)
    got = wilson_lower_bound(5, 5)
    assert got <= exact and exact - got < Decimal("1e-12")
    assert wilson_lower_bound(5, 5, z=2) < got < wilson_lower_bound(5, 5, z="1.5")
    assert wilson_lower_bound(100, 100) > wilson_lower_bound(10, 10) > wilson_lower_bound(1, 1)
    for bad in [(6, 5), (-1, 5), (0, -1)]:
        with pytest.raises(ValueError):
            wilson_lower_bound(*bad)
    with pytest.raises(TypeError):
        wilson_lower_bound(Decimal(1), 2)


# ------------------------------------------------------------------------------- the lock

HOLDER = textwrap.dedent(
    """
    import sys
    from dealvault.record import open_record
    rec = open_record(sys.argv[1])
    with rec.lock(sys.argv[2]):
        print("locked", flush=True)
        sys.stdin.readline()  # hold until told (or killed)
    print("released", flush=True)
    """
)


def start_holder(db_url: str, deal_id: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, db_url, deal_id], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if line != "locked":
        p.kill()
        raise AssertionError(f"holder did not lock: {line!r} {p.stderr.read()[-2000:]}")
    return p


def test_lock_across_two_processes(record, db_url):
    deal_id = unique_id()
    holder = start_holder(db_url, deal_id)
    try:
        with pytest.raises(DealLocked) as info, record.lock(deal_id):
            pytest.fail("two processes drive the same deal")
        assert f"pid {holder.pid}" in str(info.value) and info.value.deal_id == deal_id
        # another deal is not blocked
        with record.lock(unique_id()):
            pass
        # the holder releases normally: we get it (waiting up to 20 s)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        with record.lock(deal_id, timeout=20):
            with record.lock(deal_id):  # re-entrant in this handle
                pass
            # and now the other process is the one refused
            probe = subprocess.run(
                [sys.executable, "-c",
                 "import sys\nfrom dealvault.record import open_record, DealLocked\n"
                 "r = open_record(sys.argv[1])\n"
                 "try:\n  r.lock(sys.argv[2]).__enter__()\nexcept DealLocked as e:\n  print(e); sys.exit(7)\n",
                 db_url, deal_id],
                capture_output=True, text=True, timeout=60, check=False,
            )
            assert probe.returncode == 7, probe.stderr[-2000:]
            assert f"pid {os.getpid()}" in probe.stdout
        assert holder.wait(timeout=20) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_lock_released_when_the_holder_is_killed(record, db_url):
    """SIGKILL (no cleanup at all) must not leave the deal locked forever."""
    deal_id = unique_id()
    holder = start_holder(db_url, deal_id)
    try:
        with pytest.raises(DealLocked), record.lock(deal_id):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=20)
        t0 = time.monotonic()
        with record.lock(deal_id, timeout=30):
            pass
        assert time.monotonic() - t0 < 30
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()



def test_tx_hash_unique_per_deal_and_an_abandoned_leg_signed_again(record, spec):
    """Issue 13 (migration 0003): a restarted mirror signs byte-identical transactions for a new
    deal: the same hash is recorded for another deal; within a deal it is still refused for another
    leg; the same bytes signed again after the leg was abandoned (failed, never sent) revive it."""
    d1 = record.create_deal(spec, deal_id=unique_id()).id
    d2 = record.create_deal(spec, deal_id=unique_id()).id
    a = record.record_signed(d1, 0, "split", raw_tx="0x01aa", nonce=0, tx_hash=h(7))
    b = record.record_signed(d2, 0, "split", raw_tx="0x01aa", nonce=0, tx_hash=h(7))
    assert a.id != b.id and (a.deal_id, b.deal_id) == (d1, d2)
    with pytest.raises(RecordError, match="already recorded for another leg"):
        record.record_signed(d1, 1, "supply", raw_tx="0x01bb", nonce=1, tx_hash=h(7))
    record.mark_failed(a, "abandoned before rebroadcast: the vault is in HOLDING")
    again = record.record_signed(d1, 0, "split", raw_tx="0x01aa", nonce=0, tx_hash=h(7))
    assert again.id == a.id and again.status == "signed" and again.error is None


def test_replacements_and_cancels_are_attempts_of_one_leg(record, spec):
    """Issue 13 (migration 0004): a leg keeps every transaction signed for it. A replacement
    becomes the leg's hash; the receipt of any of its leg or replacement transactions confirms
    it (and makes that one the leg's); a cancel's receipt does not; the hash of any attempt finds
    the leg; no attempt for a leg that is no longer pending; the same hash twice is refused."""
    d = record.create_deal(spec, deal_id=unique_id()).id
    leg = record.record_signed(d, 1, "supply", raw_tx="0x02aa", nonce=4, tx_hash=h(1), fees={"maxFeePerGas": 10, "maxPriorityFeePerGas": 1})
    record.mark_broadcast(leg)
    r = record.record_attempt(leg, "replacement", "0x02bb", h(2), fees={"maxFeePerGas": 12, "maxPriorityFeePerGas": 2})
    c = record.record_attempt(leg, "cancel", "0x02cc", h(3), fees={"maxFeePerGas": 14, "maxPriorityFeePerGas": 3})
    assert (r.nonce, c.nonce) == (4, 4)
    assert [(a.kind, a.tx_hash, a.fees["maxFeePerGas"]) for a in record.attempts(leg)] == [
        ("leg", h(1), 10), ("replacement", h(2), 12), ("cancel", h(3), 14)]
    assert record.get_leg(leg.id).tx_hash == h(2) and record.get_leg(leg.id).raw_tx == "0x02bb"
    assert record.get_leg(h(1)).id == record.get_leg(h(3)).id == leg.id
    with pytest.raises(RecordError, match="already recorded"):
        record.record_attempt(leg, "replacement", "0x02dd", h(2))
    with pytest.raises(RecordError, match="allowed: replacement, cancel"):
        record.record_attempt(leg, "leg", "0x02ee", h(5))
    with pytest.raises(RecordError, match=f"receipt is for {h(3)}"):
        record.mark_confirmed(leg, {"transactionHash": h(3), "status": 1, "blockNumber": 9, "gasUsed": 21000}, leg_seq=3)
    done = record.mark_confirmed(leg, {"transactionHash": h(1), "status": 1, "blockNumber": 9, "gasUsed": 90000}, leg_seq=3)
    assert (done.status, done.tx_hash, done.raw_tx) == ("confirmed", h(1), "0x02aa")  # the first one was mined after all
    with pytest.raises(RecordError, match="is confirmed: no cancel"):
        record.record_attempt(leg, "cancel", "0x02ff", h(6))


def test_upgrade_from_0003_gives_each_leg_its_transaction_as_an_attempt(db_url, spec):
    """Migration 0004 on a record written before it: each signed leg gets its one transaction as
    its "leg" attempt, so a pending leg is reconciled exactly as before."""
    from dealvault.record import upgrade as upgrade_to

    engine = create_engine(normalize_url(db_url))
    upgrade_to(engine, "0003")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO deals (id, spec, network, chain_id, status, created_at, updated_at) "
                          "VALUES ('old-deal', '{}', 'chain138-local', 138, 'running', :t, :t)"), {"t": "2026-01-01 00:00:00+00:00"})
        conn.execute(text("INSERT INTO legs (deal_id, step, leg, status, raw_tx, nonce, tx_hash, created_at, updated_at) "
                          "VALUES ('old-deal', 0, 'split', 'broadcast', '0x01aa', 7, :h, :t, :t), "
                          "('old-deal', 1, 'supply', 'planned', NULL, NULL, NULL, :t, :t)"),
                     {"h": h(9), "t": "2026-01-01 00:00:00+00:00"})
    engine.dispose()
    rec = open_record(db_url)
    try:
        split, planned = rec.legs("old-deal")
        assert [(a.kind, a.tx_hash, a.raw_tx, a.nonce) for a in rec.attempts(split)] == [("leg", h(9), "0x01aa", 7)]
        assert rec.attempts(planned) == []
    finally:
        rec.close()
