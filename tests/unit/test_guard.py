"""`ape run guard` on the mirror kit (real Aave V3, Uniswap V2, WETH9, FiatToken, the vault and its
lens; issue 15). A deal of its own (guard-001: the demo deal with a 100 ETH opportunistic bucket, so
that a falling ETH uses it up) is driven to the phase each scenario needs, then the guard polls.

Expectations come from raw reads (the lens's risk view, nonces, the record), never from the guard's
own numbers: after each action the LTV is at or below the restore point; before it, never above
the vault's cap (the guard acted first).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import yaml
from helpers_db import BACKENDS, db_factory
from helpers_deal import EXAMPLE, deploy_demo, kit, reached_hook, resolver, reverted, signer  # noqa: F401 (kit: the fixture)

from dealvault.guard.command import load_watched
from dealvault.guard.loop import GUARD_STEP, Guard, Keys
from dealvault.guard.rules import Rule, ltv_trigger, restore_point
from dealvault.kit.evm import revert, snapshot
from dealvault.kit.fiattoken import freeze
from dealvault.kit.mirror import make_feed_stale, set_eth_price
from dealvault.kit.overlay import freeze_usdtz, halt_desk
from dealvault.paths import ROOT
from dealvault.record import open_record
from dealvault.run import run_deal, run_leg
from dealvault.vault import Phase, VaultClient

APE = ROOT / ".venv" / "bin" / "ape"
E18, E6 = 10**18, 10**6


@pytest.fixture(scope="module")
def deal(kit, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guard")
    data = yaml.safe_load(EXAMPLE.read_text())
    data["deal_id"] = "guard-001"
    data["vault"]["buckets"] = {"core": 6800, "working": 3000, "opportunistic": 200}  # 100 ETH opportunistic
    data["guard"] = {"cooldown_seconds": 0}  # polls seconds apart here (the cool-down itself: test_guard_rules.py)
    spec_path = tmp / "guard-001.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    d = deploy_demo(kit, tmp, spec_path)
    d.spec_path = spec_path
    return d


@pytest.fixture
def chain(kit, deal):
    with reverted(kit.w3) as w3:
        yield w3


@pytest.fixture(params=BACKENDS[:1])
def rec(request, tmp_path):
    with db_factory(request.param, tmp_path) as make:
        r = open_record(make())
        yield r
        r.close()


def watched(w3, deal):
    return load_watched(w3, [deal.spec_path], config=deal.config, deployments_dir=deal.tmp / "dep")


def risk(w3, deal):
    return VaultClient(w3, deal.venues.vault, deal.venues.lens).risk_view()


def nonces(w3):
    return tuple(int(w3.eth.get_transaction_count(resolver(a))) for a in ("TEST::0", "TEST::1", "TEST::2"))


def make_guard(w3, deal, rec, *, dry_run=False, operator=True, guardian=True, lines=None):
    keys = Keys(operator=signer("TEST::1", w3) if operator else None, guardian=signer("TEST::2", w3) if guardian else None)
    out = lines if lines is not None else []
    return Guard(w3, watched(w3, deal), record=rec, keys=keys, dry_run=dry_run, say=out.append), out


def drive(w3, deal, rec, until):
    op, owner = signer("TEST::1", w3), signer("TEST::0", w3)
    return run_deal(deal.spec, w3=w3, operator=op, owner=owner, record=rec, venues=deal.venues, until=until)


def test_eth_falls_step_by_step_and_the_guard_restores_ltv_before_the_cap(chain, kit, deal, rec):
    """ETH falls 2.5% a poll from $3,000. Each time the LTV reaches the trigger (cap 3000 - margin 50)
    the guard brings it back to the restore point (2900): first with the opportunistic bucket
    (only as much as needed), then, the bucket empty, by repaying from the books, then by
    deleveraging; the vault's cap (3000) is never reached; only risk-reducing legs are sent."""
    w3 = chain
    drive(w3, deal, rec, "buy")  # collateral, debt, USDTz bought: the books hold what the buy left
    g, lines = make_guard(w3, deal, rec)
    cap = risk(w3, deal)
    trigger, goal = ltv_trigger(deal.spec, 3000), restore_point(deal.spec, 3000)
    assert (trigger, goal) == (2950, 2900)
    price, seen = 3_000 * 10**8, []
    for _ in range(40):
        price = price * 975 // 1000
        set_eth_price(w3, kit.mirror, price)
        before = risk(w3, deal)
        assert before.ltvBps < 3000, f"the cap was reached at ${price / 1e8:,.0f} ({before.ltvBps} bps)"
        report = g.poll_once()
        after = risk(w3, deal)
        legs = [leg for leg in rec.legs("guard-001") if leg.step == GUARD_STEP]
        if before.ltvBps >= trigger:
            assert report.sent, lines
            assert after.ltvBps <= goal, (before.ltvBps, after.ltvBps, lines)
        else:
            assert not report.sent and after.ltvBps == before.ltvBps
        if legs:
            kinds = [leg.leg for leg in legs]
            seen = list(dict.fromkeys(kinds))
            if "deleverage" in seen:
                break
        # each kind of action in its order: the bucket while it lasts, then the books, then deleverage
        if "repay" in seen:
            assert after.opportunisticEth == 0
    assert seen == ["addCollateral", "repay", "deleverage"], (seen, lines)
    assert all(leg.status == "confirmed" and leg.args["by"] == "guard" and leg.args["rule"] == "ltv"
               for leg in rec.legs("guard-001") if leg.step == GUARD_STEP)
    assert cap.phase == risk(w3, deal).phase  # nothing else changed the deal's phase


@pytest.mark.parametrize("crisis", ["stale-feed", "usdtz-frozen", "blacklisted-on-cusdt", "desk-halted"])
def test_a_crisis_is_held_within_one_poll_and_nothing_else_is_sent(chain, kit, deal, rec, crisis):
    w3 = chain
    drive(w3, deal, rec, "buy")
    if crisis == "desk-halted":  # the desk matters in MONETIZING: one tranche redeemed first
        run_leg(deal.spec, "redeem", w3=w3, sender=signer("TEST::1", w3), record=rec, venues=deal.venues,
                args=(deal.venues.cusdt, 50_000 * E6), step=3)
        assert risk(w3, deal).phase == Phase.MONETIZING
    g, lines = make_guard(w3, deal, rec)
    assert not g.poll_once().sent  # all quiet first
    {"stale-feed": lambda: make_feed_stale(w3, kit.mirror),
     "usdtz-frozen": lambda: freeze_usdtz(w3, kit.overlay, deal.venues.vault),
     "blacklisted-on-cusdt": lambda: freeze(w3, kit.mirror.cusdt_token, deal.venues.vault),
     "desk-halted": lambda: halt_desk(w3, kit.overlay)}[crisis]()
    n0 = nonces(w3)
    report = g.poll_once()
    rule = {"stale-feed": Rule.ORACLE, "usdtz-frozen": Rule.USDTZ_FROZEN, "blacklisted-on-cusdt": Rule.STABLE_BLOCKED,
            "desk-halted": Rule.DESK}[crisis]
    assert [(d.rule, d.kind) for d in report.decisions if d.kind == "act"] == [(rule, "act")], lines
    assert risk(w3, deal).phase == Phase.HOLDING
    assert nonces(w3) == (n0[0], n0[1], n0[2] + 1)  # the guardian's hold, nothing else
    (hold,) = [leg for leg in rec.legs("guard-001") if leg.step == GUARD_STEP]
    assert hold.leg == "hold" and hold.sender == resolver("TEST::2") and hold.args["rule"] == str(rule)
    assert not g.poll_once().sent  # held: nothing more


def test_dry_run_sends_nothing_and_says_what_it_would_do(chain, kit, deal, rec):
    w3 = chain
    drive(w3, deal, rec, "buy")
    set_eth_price(w3, kit.mirror, 2_900 * 10**8)  # past the trigger
    make_feed_stale(w3, kit.mirror, age=2 * 86_400)
    n0, block = nonces(w3), w3.eth.block_number
    g, lines = make_guard(w3, deal, rec, dry_run=True)
    report = g.poll_once()
    assert nonces(w3) == n0 and w3.eth.block_number == block and not report.sent
    text = "\n".join(lines)
    assert "would hold: the deal goes to HOLDING" in text and "dry run: nothing sent" in text, text
    assert [leg for leg in rec.legs("guard-001") if leg.step == GUARD_STEP] == []


def test_without_a_key_an_action_is_alert_only(chain, kit, deal, rec):
    w3 = chain
    drive(w3, deal, rec, "buy")
    make_feed_stale(w3, kit.mirror)
    n0 = nonces(w3)
    g, lines = make_guard(w3, deal, rec, guardian=False)
    g.poll_once()
    assert nonces(w3) == n0 and any("alert only: the guard holds no guardian key" in line for line in lines), lines


def test_rpc_errors_a_stalled_chain_and_a_rewind_are_reported_and_the_guard_goes_on(chain, kit, deal, rec):
    w3 = chain
    drive(w3, deal, rec, "split")
    g, lines = make_guard(w3, deal, rec)
    g.stall_polls = 2
    for _ in range(3):
        g.poll_once()  # no block mined between polls
    assert any("chain not advancing" in p for p in lines), lines
    snap = snapshot(w3)
    for _ in range(3):
        w3.provider.make_request("evm_mine", [])
    g.poll_once()
    revert(w3, snap)
    w3.provider.make_request("evm_mine", [])
    r = g.poll_once()
    assert any("the chain went back" in p or "reorg" in p for p in r.problems), r.problems
    url = w3.provider.endpoint_uri
    try:
        w3.provider.endpoint_uri = "http://127.0.0.1:9"  # nothing listens
        bad = g.poll_once()
        assert bad.block is None and "the chain could not be read" in bad.problems[0]
    finally:
        w3.provider.endpoint_uri = url
    assert g.poll_once().block is not None  # and on it goes


def _guard_cli(kit, deal, db, *extra, env=None, wait=True):
    args = [str(APE), "run", "guard", "--rpc", kit.node.url, "--deals", str(deal.spec_path), "--config", str(deal.config),
            "--deployments-dir", str(deal.tmp / "dep"), "--account", "TEST::1", "--guardian-account", "TEST::2",
            "--db", db, *extra]
    e = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx"), **(env or {})}
    if wait:
        return subprocess.run(args, cwd=ROOT, env=e, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(args, cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_action_then_restart_never_sends_twice(chain, kit, deal, tmp_path):
    """The guard (a real process) signs and persists its hold, is SIGKILLed before the broadcast;
    restarted, it reconciles the saved hold first (rebroadcast: the same bytes, mined once) and
    sends nothing else."""
    w3 = chain
    db = f"sqlite:///{tmp_path}/g.db"
    first = open_record(db)
    try:
        drive(w3, deal, first, "buy")
    finally:
        first.close()
    make_feed_stale(w3, kit.mirror)
    gate = tmp_path / "gate"
    n0 = nonces(w3)
    p = _guard_cli(kit, deal, db, "--once", env={"DEALVAULT_TEST_HOOK": f"before-broadcast:{gate}"}, wait=False)
    saved = reached_hook(p, gate)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert nonces(w3) == n0  # killed before the broadcast
    out = _guard_cli(kit, deal, db, "--once")
    assert out.returncode == 0, out.stdout + out.stderr
    assert nonces(w3) == (n0[0], n0[1], n0[2] + 1)  # the one hold
    assert w3.eth.get_transaction_receipt(saved)["status"] == 1
    assert risk(w3, deal).phase == Phase.HOLDING
    r = open_record(db)
    try:
        holds = [leg for leg in r.legs("guard-001") if leg.leg == "hold"]
        assert [(h.tx_hash, h.status) for h in holds] == [(saved, "confirmed")]
    finally:
        r.close()


def test_two_guards_share_the_deal_through_the_record_and_one_acts(chain, kit, deal, tmp_path):
    """Two guard processes on the same deal and the same PostgreSQL record: the record's lease gives
    the deal to one of them; when its feed goes stale exactly one hold is sent, by the guard that
    holds the lease (the other never watches it)."""
    from helpers_db import PG_SKIP_REASON, pg_enabled

    if not pg_enabled():
        pytest.skip(PG_SKIP_REASON)
    w3 = chain
    with db_factory("postgresql", tmp_path) as make:
        db = make()
        first = open_record(db)
        try:
            drive(w3, deal, first, "buy")
        finally:
            first.close()
        n0 = nonces(w3)
        procs = [_guard_cli(kit, deal, db, "--interval", "0.5", "--polls", "40", wait=False) for _ in range(2)]
        time.sleep(8)  # both started and claiming
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        make_feed_stale(w3, kit.mirror)
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
    acted = [err for _out, err in outs if "guard-001 oracle act" in err]
    assert len(acted) == 1, outs
    assert nonces(w3) == (n0[0], n0[1], n0[2] + 1)
    assert risk(w3, deal).phase == Phase.HOLDING
