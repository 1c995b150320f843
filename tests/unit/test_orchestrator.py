"""The orchestrator end to end on the kit (own anvil node: chain id 138 + mirror + overlay).

Expectations are computed here from raw reads (token balances, debt token, feed, pair reserves,
block timestamps, nonces), never from the vault's own math. Subprocess runs cover the CLI exit
codes and crash safety.

DealVault v2: the views come from the lens the deployment recorded; before the buy the vault's
TWAP observation (taken at split) must be twapWindow (300 s in deals/example.yaml) old: the local
mirror's clock is advanced, a real network waits (up to max_wait, else exit 4); a pair pushed above
its TWAP refuses the buy before sending (exit 6); reverts decode by name (v2's custom errors).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from decimal import Decimal, localcontext
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from eth_utils import keccak
from helpers_cli import ape_run
from helpers_db import BACKENDS, db_factory
from helpers_deal import deploy_demo, kit, reached_hook, resolver, reverted  # noqa: F401 (kit: the fixture)
from web3 import Web3

from dealvault.accounts import ape_account
from dealvault.deploy import AnvilSigner, deal_params, deploy_vault
from dealvault.kit.evm import revert, snapshot
from dealvault.kit.overlay import swap_on_pair
from dealvault.paths import ROOT
from dealvault.record import open_record, vault_lock_name
from dealvault.run import (
    EXIT_HOLDING,
    EXIT_INPUT,
    EXIT_OWNER_ACTION,
    EXIT_REFUSED,
    REDEEM_MIN_GAS,
    CapError,
    InputError,
    LegRejected,
    read_risk,
    run_deal,
    run_leg,
)
from dealvault.signer import ApeAccountSigner
from dealvault.spec import load_spec, parse_spec
from dealvault.spec.netconfig import load_netconfig
from dealvault.vault import reason_text, vault_abi

EXAMPLE = ROOT / "deals" / "example.yaml"
APE = ROOT / ".venv" / "bin" / "ape"
ERC20 = [{"type": "function", "name": "balanceOf", "stateMutability": "view", "inputs": [{"type": "address", "name": "a"}],
          "outputs": [{"type": "uint256", "name": ""}]}]
FEED = [{"type": "function", "name": "latestRoundData", "stateMutability": "view", "inputs": [],
         "outputs": [{"type": "uint80", "name": "r"}, {"type": "int256", "name": "a"}, {"type": "uint256", "name": "s"},
                     {"type": "uint256", "name": "u"}, {"type": "uint80", "name": "ar"}]}]
PHASE = [{"type": "function", "name": "phase", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint8", "name": ""}]}]
PAIR = [{"type": "function", "name": "getReserves", "stateMutability": "view", "inputs": [],
         "outputs": [{"type": "uint112", "name": "r0"}, {"type": "uint112", "name": "r1"}, {"type": "uint32", "name": "t"}]},
        {"type": "function", "name": "token0", "stateMutability": "view", "inputs": [], "outputs": [{"type": "address", "name": ""}]}]
TWAP_WINDOW = 300  # deals/example.yaml vault.twap_window


@pytest.fixture(scope="module")
def deployed(kit, tmp_path_factory):
    return deploy_demo(kit, tmp_path_factory.mktemp("orch"))


@pytest.fixture
def chain(kit, deployed):
    with reverted(kit.w3) as w3:
        yield w3


@pytest.fixture(params=BACKENDS)
def backend(request):
    """The deal record's backend: SQLite, and PostgreSQL when DATABASE_URL is set (else skipped)."""
    return request.param


@pytest.fixture
def fresh_db(backend, tmp_path):
    """``fresh_db(name)``: the URL of a new empty record database of the test's backend."""
    with db_factory(backend, tmp_path) as make:
        yield make


@pytest.fixture
def rec(fresh_db):
    r = open_record(fresh_db())
    yield r
    r.close()


def signers(w3):
    return ApeAccountSigner(ape_account("TEST::1"), w3), ApeAccountSigner(ape_account("TEST::0"), w3)


def bal(w3, token, who) -> int:
    return int(w3.eth.contract(address=token, abi=ERC20).functions.balanceOf(who).call())


def nonces(w3):
    return tuple(int(w3.eth.get_transaction_count(resolver(a))) for a in ("TEST::0", "TEST::1"))


def wilson(s: int, n: int) -> Decimal:
    with localcontext() as c:
        c.prec = 50
        z = Decimal("1.96")
        p = Decimal(s) / n
        return (p + z * z / (2 * n) - z * (p * (1 - p) / n + z * z / (4 * n * n)).sqrt()) / (1 + z * z / n)


class Lines:
    """A console for run_deal that keeps what it prints."""

    def __init__(self):
        self.lines: list[str] = []

    def print(self, msg, **_kw):
        self.lines.append(str(msg))

    def status(self, *_a, **_kw):
        return contextlib.nullcontext()

    def text(self) -> str:
        return " ".join(" ".join(self.lines).split())


def spot_e6(w3, v) -> int:
    """The cUSDT/USDTz pair's spot price of USDTz (1e6 = $1) from its reserves, as UQ112x112 then
    rounded down like the vault (TwapLib.toE6)."""
    pair = w3.eth.contract(address=pair_address(w3, v), abi=PAIR)
    r0, r1, _ = pair.functions.getReserves().call()
    rz, rs = (r0, r1) if pair.functions.token0().call() == v.usdtz else (r1, r0)
    return ((rs << 112) // rz * 10**6) >> 112


def pair_address(w3, v) -> str:
    factory = [{"type": "function", "name": "getPair", "stateMutability": "view",
                "inputs": [{"type": "address", "name": "a"}, {"type": "address", "name": "b"}], "outputs": [{"type": "address", "name": ""}]}]
    router = [{"type": "function", "name": "factory", "stateMutability": "view", "inputs": [], "outputs": [{"type": "address", "name": ""}]}]
    f = w3.eth.contract(address=w3.eth.contract(address=v.router, abi=router).functions.factory().call(), abi=factory)
    return f.functions.getPair(v.cusdt, v.usdtz).call()


def split_block_time(w3, rec) -> int:
    (split,) = [l for l in rec.legs("demo-001") if l.leg == "split"]
    return int(w3.eth.get_block(split.block_number)["timestamp"])


def spec_with(**changes):
    data = yaml.safe_load(EXAMPLE.read_text())
    for k, v in changes.items():
        cur = data
        parts = k.split(".")
        for p in parts[:-1]:
            cur = cur[p]
        cur[parts[-1]] = v
    return parse_spec(data)


# --------------------------------------------------------------------------------------------


def test_happy_path_whole_deal(chain, deployed, rec, kit):
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    n0 = nonces(w3)
    price = int(w3.eth.contract(address=v.feed, abi=FEED).functions.latestRoundData().call()[1])
    out = Lines()
    report = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, console=out)
    assert report.status == "completed" and report.exit_code == 0
    # raw reads, independent of the vault's math
    assert w3.eth.contract(address=v.vault, abi=PHASE).functions.phase().call() == 6  # CLOSED
    debt_token = kit.overlay.variable_debt_tokens["cUSDT"]
    assert bal(w3, debt_token, v.vault) == 0
    assert bal(w3, v.usdtz, v.vault) == 0
    stable_left = bal(w3, v.cusdt, v.vault)
    assert stable_left > 0
    legs = rec.legs("demo-001")
    assert [l.leg for l in legs] == ["fund", "split", "supply", "borrow", "buy", "redeem", "redeem", "redeem", "repay", "close"]
    assert [l.leg_seq for l in legs] == list(range(1, 11))
    assert all(l.status == "confirmed" for l in legs)
    for l in legs:  # the raw tx persisted is the one mined
        assert "0x" + keccak(bytes.fromhex(l.raw_tx[2:])).hex() == l.tx_hash
        assert "0x" + bytes(w3.eth.get_transaction(l.tx_hash)["hash"]).hex() == l.tx_hash
    assert nonces(w3) == (n0[0] + 1, n0[1] + 9)  # owner funds once; operator sends 9 legs
    tr = rec.tranches("demo-001")
    assert [t.rung for t in tr] == [0, 1, 2] and all(t.ok for t in tr)
    assert tr[0].size == 50_000 * 10**6 and tr[1].size == 250_000 * 10**6
    assert all(t.fee == t.size - t.received for t in tr)
    # --json matches the chain
    j = json.loads(json.dumps(report.to_json()))
    assert j["phase"] == "CLOSED" and j["debt"] == 0 and j["usdtz_held"] == 0
    assert j["stable_held"] == stable_left
    assert j["capital_wei"] == deployed.spec.capital_wei
    price = int(w3.eth.contract(address=v.feed, abi=FEED).functions.latestRoundData().call()[1])
    eth_books = j["buckets_wei"]["core"] + j["buckets_wei"]["working"] + j["buckets_wei"]["opportunistic"]
    assert w3.eth.get_balance(v.vault) >= eth_books
    pnl_eth = eth_books - deployed.spec.capital_wei
    assert j["realized_pnl_eth_wei"] == pnl_eth
    assert j["realized_pnl_usd8"] == pnl_eth * price // 10**18 + stable_left * 100 or pnl_eth < 0
    assert Decimal(j["wilson_lower_bound"]) == wilson(3, 3).quantize(Decimal("1e-12"), rounding="ROUND_FLOOR")
    # one rung numbering (issue 13): 1..3 in the JSON, the vault's own index (0..2) only in "risk"
    assert j["tranches_succeeded"] == 3 and j["rung"] == 3 and j["risk"]["rung"] == 2
    assert [t["rung"] for t in j["tranches"]] == [1, 2, 3] == [t.rung + 1 for t in tr]
    assert sum(t["received"] for t in j["tranches"]) == sum(t.received for t in tr)
    assert j["gas_total"] == sum(int(w3.eth.get_transaction_receipt(l.tx_hash)["gasUsed"]) for l in legs)
    # v2: the buy came once the split's observation was twapWindow old, the local clock moved for it (said so)
    buy = [l for l in legs if l.leg == "buy"][0]
    assert int(w3.eth.get_block(buy.block_number)["timestamp"]) >= split_block_time(w3, rec) + TWAP_WINDOW
    assert "advanced the local chain's clock by" in out.text() and "evm_increaseTime" in out.text()
    # the redeem legs were sent with gas enough for the vault's GasTooLow floor (plus the intrinsic 21,000)
    for l in legs:
        if l.leg == "redeem":
            assert int(w3.eth.get_transaction(l.tx_hash)["gas"]) >= REDEEM_MIN_GAS + 21_000
    # the loss budget: 50 bps of the capital at the feed's price (6 dp USD); the demo loses nothing
    split_value = deployed.spec.capital_wei * price // 10**20
    assert j["split_value"] == split_value and j["loss_budget"] == split_value * 50 // 10_000
    assert j["operator_loss"] == 0


def test_dry_run_sends_nothing(chain, deployed, rec):
    w3 = chain
    op, owner = signers(w3)
    block, n0 = w3.eth.block_number, nonces(w3)
    report = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=deployed.venues, dry_run=True)
    assert report.status == "dry-run" and report.dry_run
    assert [l.leg for l in report.legs][:2] == ["fund", "split"] and report.legs[-1].leg == "close"
    assert all(l.gas_used and l.gas_used > 0 for l in report.legs)
    assert w3.eth.block_number == block and nonces(w3) == n0
    assert read_risk(w3, deployed.venues.vault)["phase"] == 0
    assert rec.get_deal("demo-001") is None  # the real record is untouched


def _no_send(w3, fn):
    block, n0 = w3.eth.block_number, nonces(w3)
    with pytest.raises(InputError) as ei:
        fn()
    assert ei.value.exit_code == EXIT_INPUT
    assert w3.eth.block_number == block and nonces(w3) == n0
    return str(ei.value)


def test_bad_input_nothing_sent(chain, deployed, rec, fresh_db):
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run = lambda spec, **kw: run_deal(spec, w3=w3, operator=kw.get("op", op), owner=owner, record=rec, venues=v)  # noqa: E731
    msg = _no_send(w3, lambda: run(spec_with(network={"name": "elsewhere-local", "chain_id": 1, "local": True})))
    assert "chain id is 138" in msg and "expects 1" in msg
    msg = _no_send(w3, lambda: run(spec_with(network={"name": "m-local", "chain_id": 138, "local": True, "genesis_hash": "0x" + "11" * 32})))
    assert "genesis hash" in msg
    msg = _no_send(w3, lambda: run(spec_with(**{"vault.rungs": [60_000, 250_000, 1_000_000]})))
    assert "vault.rungs[0] 60000 is looser" in msg
    stranger = ApeAccountSigner(ape_account("TEST::5"), w3)
    msg = _no_send(w3, lambda: run(deployed.spec, op=stranger))
    assert "is not the vault's operator" in msg
    # v2: the views' lens must be named and be the recorded DealVaultLens (not just any contract)
    import dataclasses

    from dealvault.run import register_lens

    try:
        no_lens = dataclasses.replace(v, lens=None, lens_code_hash=None)
        msg = _no_send(w3, lambda: run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=no_lens))
        assert "no DealVaultLens" in msg
        other = dataclasses.replace(v, lens=v.pool)  # a contract, but not the recorded lens
        msg = _no_send(w3, lambda: run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=other))
        assert f"lens {v.pool}: its code hashes to" in msg and "deployment record's" in msg
    finally:
        register_lens(v.vault, v.lens)
    # a vault in the wrong phase: run step 0, then start the deal afresh (not --resume)
    r = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until=0)
    assert r.status == "stopped" and read_risk(w3, v.vault)["phaseName"] == "SPLIT"
    other = open_record(fresh_db("other"))
    try:
        msg = _no_send(w3, lambda: run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=other, venues=v))
    finally:
        other.close()
    assert "phase SPLIT" in msg
    msg = _no_send(w3, lambda: run(deployed.spec))
    assert "--resume" in msg


def test_until_then_resume_never_twice(chain, deployed, rec):
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    n0 = nonces(w3)
    r1 = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="position")
    assert r1.status == "stopped" and [l.leg for l in r1.legs] == ["fund", "split", "supply", "borrow"]
    r2 = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True)
    assert r2.status == "completed" and r2.legs[0].leg == "buy"
    r3 = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True)
    assert r3.status == "completed" and r3.legs == []
    assert nonces(w3) == (n0[0] + 1, n0[1] + 9)
    seqs = [l.leg_seq for l in rec.legs("demo-001")]
    assert seqs == list(range(1, 11))


def test_rewound_legs_are_reconciled_by_hash(chain, deployed, rec):
    """Issue 13: the node is rewound two blocks (supply and borrow gone) after they were recorded:
    the resume finds by hash that the chain no longer has them, rebroadcasts the same raw
    transactions (their simulation still passes) and completes; before, it failed for good with
    "legSeq 3 is already recorded"."""
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    n0 = nonces(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="split")
    snap = snapshot(w3)
    r1 = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True, until="position")
    assert [leg.leg for leg in r1.legs] == ["supply", "borrow"]
    sent = {leg.leg: leg.tx_hash for leg in r1.legs}
    revert(w3, snap)  # the two blocks are gone, and their transactions with them
    assert w3.eth.get_transaction_count(op.address) == n0[1] + 1
    r2 = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True)
    assert r2.status == "completed"
    legs = rec.legs("demo-001")
    assert [leg.leg_seq for leg in legs] == list(range(1, 11)) and all(leg.status == "confirmed" for leg in legs)
    again = {leg.leg: leg.tx_hash for leg in legs if leg.leg in sent}
    assert again == sent  # the same raw transactions, mined again
    assert all(w3.eth.get_transaction_receipt(h)["status"] == 1 for h in sent.values())
    assert nonces(w3) == (n0[0] + 1, n0[1] + 9)  # nothing sent twice


def test_one_vault_is_driven_by_one_deal_at_a_time(chain, deployed, rec):
    """Issue 13: the lock covers the vault, not only the deal id: while the vault's lock is held
    (here by this test, as another deal id driving the same vault would hold it), a run of the
    deal is refused (exit 2, the holder named, nothing sent); once released, it runs."""
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    n0 = nonces(w3)
    other = open_record(rec.url.render_as_string(hide_password=False))  # another process's view of the record
    try:
        with rec.lock(vault_lock_name(138, v.vault)):
            with pytest.raises(InputError, match=rf"vault {v.vault.lower()} \(chain 138\) is already being driven: its lock is held by pid"):
                run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=other, venues=v, until="split")
            assert nonces(w3) == n0
    finally:
        other.close()
    r = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="split")
    assert [leg.leg for leg in r.legs] == ["fund", "split"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_two_records_never_drive_one_vault_at_once(chain, deployed, fresh_db, tmp_path):
    """Issue 13: the vault's lock is also this host's, whatever record drives it: while another
    process (here a small holder process) drives the vault through another database, a run with a
    record of its own is refused (exit 2, the holder's pid named, nothing sent); once that process
    dies (SIGKILL: the OS releases the lock), the run goes."""
    from dealvault.record import host_lock_dir

    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    n0 = nonces(w3)
    ready = tmp_path / "held"
    holder = subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), "-c", (
        "import sys, time, pathlib\n"
        "from dealvault.record import host_vault_lock\n"
        f"with host_vault_lock(138, {v.vault!r}):\n"
        f"    pathlib.Path({str(ready)!r}).write_text('x')\n"
        "    time.sleep(300)\n")], env={**os.environ, "DEALVAULT_LOCK_DIR": str(host_lock_dir())})
    try:
        _wait_for(ready.exists, "the holder to take the vault's lock", timeout=60)
        mine = open_record(fresh_db("mine"))
        try:
            with pytest.raises(InputError, match=rf"vault {v.vault.lower()} \(chain 138\) is already being driven: .*pid {holder.pid}"):
                run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=mine, venues=v, until="split")
            assert nonces(w3) == n0
        finally:
            mine.close()
    finally:
        holder.kill()
        holder.wait()
    again = open_record(fresh_db("again"))
    try:
        r = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=again, venues=v, until="split")
    finally:
        again.close()
    assert [leg.leg for leg in r.legs] == ["fund", "split"]


def test_rebuild_matches_legs_by_hash_after_a_rewind(chain, deployed, rec):
    """Issue 13: supply and borrow recorded, the node rewound past them, then the guardian's hold()
    takes legSeq 3 on the chain: the rebuild records the hold as legSeq 3 and puts the recorded
    supply and borrow back to pending (the chain no longer has them); before, it kept them because
    their legSeqs were 'already recorded'."""
    from dealvault.run.status import rebuild_record

    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="split")
    snap = snapshot(w3)
    r1 = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True, until="position")
    gone = [leg.tx_hash for leg in r1.legs]
    revert(w3, snap)
    hold = "0x" + bytes(_vault(w3, deployed).functions.hold().transact({"from": resolver("TEST::2")})).hex()
    res = rebuild_record(w3, v.vault, rec, "demo-001", from_block=v.deploy_block)
    assert res.added == [3] and res.skipped == [1, 2]
    legs = {leg.tx_hash: leg for leg in rec.legs("demo-001")}
    assert legs[hold].leg_seq == 3 and legs[hold].leg == "hold" and legs[hold].status == "confirmed"
    for h in gone:
        assert legs[h].status == "broadcast" and legs[h].leg_seq is None and legs[h].error.startswith("rebuild:")
    assert [leg.leg_seq for leg in rec.legs("demo-001") if leg.status == "confirmed"] == [1, 2, 3]


def test_pool_limits_checked_before_the_first_leg(chain, kit, deployed, rec):
    """Issue 13: Aave reconfigured through its real PoolConfigurator (a borrow cap below the
    deal's ask, a supply cap below its collateral, the pool's LTV for the wrapper below the deal's
    target, the stablecoin frozen): the run is refused before anything is sent, each limit named
    with its numbers; back to the kit's configuration, the same run goes through."""
    from dealvault.kit.evm import act_as
    from dealvault.run.pool import read_reserves

    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    cfg = kit.overlay.configurator_contract(w3)
    admin = kit.overlay.aave_admin
    (coll,) = read_reserves(w3, v.pool, [v.weth9])
    act_as(w3, admin, cfg.functions.setBorrowCap(v.cusdt, 1_000))
    act_as(w3, admin, cfg.functions.setSupplyCap(v.weth9, 100))
    act_as(w3, admin, cfg.functions.configureReserveAsCollateral(v.weth9, 2_000, (coll.config >> 16) & 0xFFFF, (coll.config >> 32) & 0xFFFF))
    act_as(w3, admin, cfg.functions.setReserveFreeze(v.cusdt, True))
    n0 = nonces(w3)
    with pytest.raises(InputError) as ei:
        run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v)
    msg = str(ei.value)
    assert "nothing sent" in msg and nonces(w3) == n0
    assert "Aave borrow cap of cUSDT: 1,000 cUSDT, 0 cUSDT borrowed, the deal borrows 1,305,000" in msg, msg
    assert "Aave supply cap of WETH9: 100 WETH9" in msg and "the deal supplies 1,500 WETH9" in msg, msg
    assert "Aave's LTV for WETH9 is 2000 bps, below the deal's target 2900 bps" in msg, msg
    assert "Aave reserve cUSDT is frozen" in msg, msg
    act_as(w3, admin, cfg.functions.setBorrowCap(v.cusdt, 0))
    act_as(w3, admin, cfg.functions.setSupplyCap(v.weth9, 0))
    act_as(w3, admin, cfg.functions.configureReserveAsCollateral(v.weth9, coll.ltv_bps, (coll.config >> 16) & 0xFFFF,
                                                                 (coll.config >> 32) & 0xFFFF))
    act_as(w3, admin, cfg.functions.setReserveFreeze(v.cusdt, False))
    r = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="position")
    assert [leg.leg for leg in r.legs] == ["fund", "split", "supply", "borrow"]


def test_an_account_that_cannot_pay_for_its_leg_is_named_before_signing(chain, deployed, rec):
    """Issue 13: the operator's account holds too little ETH for the split's gas: exit 2 with the
    balance and the leg's worst cost, nothing signed or sent (it used to end in a raw RPC error
    dict after the leg was persisted)."""
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    w3.provider.make_request("anvil_setBalance", [op.address, hex(10**9)])  # 1 gwei
    n0 = nonces(w3)
    with pytest.raises(InputError, match=r"step 0 split: 0x\w+ holds 0\.000000001 ETH; the leg can cost up to [\d.]+ ETH "
                                         r"\(gas limit x price \+ value\): fund the account; nothing sent"):
        run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v)
    assert nonces(w3)[1] == n0[1]  # the operator sent nothing
    assert [leg.leg for leg in rec.legs("demo-001")] == ["fund"]  # the owner's fund went; no split was persisted


# ---- real processes -------------------------------------------------------------------------


def _cli(kit, deployed, db_url, *extra, env=None, wait=True, rpc=None):
    """``ape run execute_deal`` for the demo deal: run to its end in this process (tests/unit/helpers_cli),
    or, with ``wait=False``, started as a real process (one the test kills or stops at a hook)."""
    args = ["--rpc", rpc or kit.node.url, "--account", "TEST::1", "--owner-account", "TEST::0",
            "--deal", str(EXAMPLE), "--deployment", str(deployed.record_file), "--db", db_url, *extra]
    if wait:
        return ape_run("execute_deal", *args, env=env)
    e = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx"), **(env or {})}
    return subprocess.Popen([str(APE), "run", "execute_deal", *args], cwd=ROOT, env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("hook,leg_no", [("after-broadcast", 3), ("before-broadcast", 5)])
def test_crash_sigkill_then_resume(chain, kit, deployed, tmp_path, fresh_db, hook, leg_no):
    w3 = chain
    db = fresh_db()
    gate = tmp_path / "gate"
    n0 = nonces(w3)
    p = _cli(kit, deployed, db, env={"DEALVAULT_TEST_HOOK": f"{hook}:{gate}", "DEALVAULT_TEST_HOOK_LEG": str(leg_no)}, wait=False)
    crashed_hash = reached_hook(p, gate)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    r = open_record(db)
    try:
        pend = r.pending_legs("demo-001")
        assert [l.tx_hash for l in pend] == [crashed_hash]
        assert pend[0].status == ("broadcast" if hook == "after-broadcast" else "signed")
    finally:
        r.close()
    from web3.exceptions import TransactionNotFound

    if hook == "before-broadcast":
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction(crashed_hash)
    out = _cli(kit, deployed, db, "--resume", "demo-001", "--json")
    assert out.returncode == 0, out.stderr
    j = json.loads(out.stdout)
    assert j["status"] == "completed" and j["phase"] == "CLOSED"
    assert nonces(w3) == (n0[0] + 1, n0[1] + 9)  # exactly one per leg
    assert w3.eth.get_transaction_receipt(crashed_hash)["status"] == 1  # the same raw tx, mined once
    r = open_record(db)
    try:
        legs = r.legs("demo-001")
        assert [l.leg_seq for l in legs] == list(range(1, 11)) and all(l.status == "confirmed" for l in legs)
    finally:
        r.close()


def _vault(w3, deployed):
    return w3.eth.contract(address=deployed.venues.vault, abi=vault_abi())


@pytest.mark.parametrize("backend", ["sqlite"])
def test_saved_leg_is_simulated_again_and_abandoned_after_a_guardian_hold(chain, kit, deployed, tmp_path, fresh_db):
    """Issue 13: a redeem signed and saved, the process killed before its broadcast, the guardian's
    hold() in between: the resume reads the vault again, abandons the saved leg (the vault would
    take a redeem in HOLDING, the harness sends nothing there; its nonce stays unused) and stops in
    HOLDING (exit 3); after the owner's resume() the next
    --resume re-plans the redeem from the chain and closes the deal."""
    from web3.exceptions import TransactionNotFound

    w3, db, gate = chain, fresh_db(), tmp_path / "gate"
    p = _cli(kit, deployed, db, env={"DEALVAULT_TEST_HOOK": f"before-broadcast:{gate}", "DEALVAULT_TEST_HOOK_LEG": "6"},
             wait=False)
    saved = reached_hook(p, gate)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    _vault(w3, deployed).functions.hold().transact({"from": resolver("TEST::2")})  # the guardian
    n0 = nonces(w3)
    out = _cli(kit, deployed, db, "--resume", "demo-001")
    assert out.returncode == EXIT_HOLDING, out.stdout + out.stderr
    err = " ".join(out.stderr.split())  # the console wraps long lines
    assert "no longer applies (the vault is in HOLDING" in err and "abandoned, never sent" in err, err
    assert nonces(w3) == n0  # nothing sent
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction(saved)
    r = open_record(db)
    try:
        (leg,) = [x for x in r.legs("demo-001") if x.tx_hash == saved]
        assert leg.leg == "redeem" and leg.status == "failed" and leg.error.startswith("abandoned before rebroadcast")
        assert r.pending_legs("demo-001") == []
    finally:
        r.close()
    _vault(w3, deployed).functions.resume().transact({"from": resolver("TEST::0")})  # the owner
    out = _cli(kit, deployed, db, "--resume", "demo-001", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["phase"] == "CLOSED"
    r = open_record(db)
    try:
        mined = [x for x in r.legs("demo-001") if x.status == "confirmed"]
        assert [x.leg for x in mined][-5:] == ["redeem", "redeem", "redeem", "repay", "close"]
        # the vault's legs 6 and 7 were the guardian's hold and the owner's resume
        assert [x.leg_seq for x in mined] == [1, 2, 3, 4, 5, 8, 9, 10, 11, 12]
    finally:
        r.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_legs_of_the_owner_and_guardian_between_read_and_mining_are_theirs(chain, kit, deployed, tmp_path, fresh_db):
    """Issue 13: the guardian's hold() and the owner's resume() land between the harness's read (and
    simulation) of a redeem and its broadcast: the redeem mines with legSeq 8 instead of 6; it is
    recorded as ours, the note names the two legs of another actor, and the run completes."""
    w3, db, gate = chain, fresh_db(), tmp_path / "gate"
    p = _cli(kit, deployed, db, "--json", env={"DEALVAULT_TEST_HOOK": f"before-broadcast:{gate}", "DEALVAULT_TEST_HOOK_LEG": "6"},
             wait=False)
    reached_hook(p, gate)
    v = _vault(w3, deployed)
    v.functions.hold().transact({"from": resolver("TEST::2")})
    v.functions.resume().transact({"from": resolver("TEST::0")})
    gate.write_text("go")
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stdout + stderr
    j = json.loads(stdout)
    assert j["phase"] == "CLOSED"
    redeem = next(x for x in j["legs_this_run"] if x["leg"] == "redeem")
    assert redeem["leg_seq"] == 8 and "2 leg(s) by another actor" in redeem["note"]
    r = open_record(db)
    try:
        assert [x.leg_seq for x in r.legs("demo-001")] == [1, 2, 3, 4, 5, 8, 9, 10, 11, 12]
        assert r.pending_legs("demo-001") == []
    finally:
        r.close()


@pytest.fixture
def keystore():
    """A real ape keystore account made for the test (``ape accounts import`` writes the same file:
    a fresh random key encrypted with a throw-away passphrase; nothing committed), removed after."""
    import uuid

    from ape import accounts as ape_accounts
    from eth_account import Account

    alias, passphrase, key = f"dv-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex, Account.create()
    folder = ape_accounts.containers["accounts"].data_folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{alias}.json"
    path.write_text(json.dumps(Account.encrypt(key.key, passphrase)))
    try:
        yield SimpleNamespace(alias=alias, passphrase=passphrase, address=key.address)
    finally:
        path.unlink(missing_ok=True)


def test_keystore_operator_signs_unattended(chain, kit, deployed, tmp_path, keystore):
    """Issue 13: the operator is a keystore account: with its passphrase in ape's
    APE_ACCOUNTS_<alias>_PASSPHRASE the legs are signed unattended (no prompt per leg); without it
    and no terminal, or with a wrong one: exit 2 naming the variable, nothing sent."""
    from dealvault.accounts import passphrase_variable

    w3 = chain
    spec_file = tmp_path / "keystore.yaml"
    spec_file.write_text(EXAMPLE.read_text().replace("operator: alias:TEST::1", f"operator: alias:{keystore.alias}"))
    assert keystore.alias in spec_file.read_text()

    def resolve(alias: str) -> str:
        return keystore.address if alias == keystore.alias else resolver(alias)

    res = deploy_vault(w3, AnvilSigner(w3, resolver("TEST::0")), load_netconfig(deployed.tmp / "local" / "t.config.yaml"),
                       deal_params(load_spec(spec_file), resolve), deployments_dir=tmp_path / "dep", confirmations=1, poll=0.02)
    w3.provider.make_request("anvil_setBalance", [keystore.address, hex(10**19)])

    args = ["--rpc", kit.node.url, "--account", keystore.alias, "--owner-account", "TEST::0", "--deal", str(spec_file),
            "--deployment", str(res.record_path), "--db", f"sqlite:///{tmp_path}/k.db", "--until", "position"]

    def run(env):  # a real process with no terminal: nothing can prompt
        e = {k: v for k, v in os.environ.items() if k != passphrase_variable(keystore.alias)}
        return subprocess.run([str(APE), "run", "execute_deal", *args], cwd=ROOT, env={**e, **env}, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)

    block = w3.eth.block_number
    out = ape_run("execute_deal", *args, env={passphrase_variable(keystore.alias): None})
    err = " ".join(out.stderr.split())
    assert out.returncode == 2 and f"set {passphrase_variable(keystore.alias)} in the environment" in err, out.stderr
    out = ape_run("execute_deal", *args, env={passphrase_variable(keystore.alias): "not-the-passphrase"})
    err = " ".join(out.stderr.split())
    assert out.returncode == 2 and "does not unlock its keystore" in err, out.stderr
    assert w3.eth.block_number == block  # nothing sent
    out = run({passphrase_variable(keystore.alias): keystore.passphrase})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Sign:" not in out.stdout + out.stderr and keystore.passphrase not in out.stdout + out.stderr
    assert w3.eth.get_transaction_count(keystore.address) == 3  # split, supply, borrow: signed by the keystore


def test_a_deployment_drives_only_the_chain_it_was_made_on(chain, kit, deployed, tmp_path):
    """Issue 13: the vault's deployment record names the genesis of the chain it was deployed on;
    a node with another genesis (a mirror's deployment pointed at the real chain, or the other way
    round) is refused whatever else is pinned: exit 2, nothing sent."""
    w3 = chain
    rec = json.loads(Path(deployed.record_file).read_text())
    rec["network"]["genesis_hash"] = "0x" + "11" * 32
    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps(rec))
    block = w3.eth.block_number
    out = ape_run("execute_deal", "--rpc", kit.node.url, "--account", "TEST::1", "--owner-account", "TEST::0",
                  "--deal", str(EXAMPLE), "--deployment", str(other), "--db", f"sqlite:///{tmp_path}/g.db")
    err = " ".join(out.stderr.split())
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"the vault was deployed on the chain with genesis 0x{'11' * 32} (its deployment record)" in err, err
    assert w3.eth.block_number == block


def test_a_broken_chain138_config_is_bad_input_not_a_skipped_guard(chain, deployed, tmp_path, monkeypatch, capsys):
    """Issue 13: the mainnet guard reads Chain 138's pinned genesis from its network config; a
    broken config is exit 2 naming it (it used to be skipped silently, the guard with it)."""
    from dealvault.run.execute import ExecuteOptions, execute_deal
    from dealvault.spec import netconfig

    broken = tmp_path / "chain138.config.yaml"
    broken.write_text("network: [this is not a mapping\n")
    monkeypatch.setattr(netconfig, "CHAIN138_CONFIG", broken)
    block = chain.eth.block_number
    code = execute_deal(ExecuteOptions(deal=EXAMPLE, account=ape_account("TEST::1"), rpc=str(chain.provider.endpoint_uri),
                                       deployment=deployed.record_file, db=f"sqlite:///{tmp_path}/b.db"), confirm=None)
    assert code == 2
    assert "chain138.config.yaml" in " ".join(capsys.readouterr().err.split())
    assert chain.eth.block_number == block


def test_cli_exit_codes_bad_input(chain, kit, deployed, tmp_path):
    w3 = chain
    block = w3.eth.block_number
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("target_ltv_bps: 2900", "target_ltv_bps: 3500"))
    out = _cli(kit, deployed, f"sqlite:///{tmp_path}/d.db", "--deal", str(bad))
    assert out.returncode == 2 and "target_ltv_bps" in out.stderr and "1..3000" in out.stderr
    out = ape_run("execute_deal", "--rpc", kit.node.url, "--account", "no-such-alias", "--deal", str(EXAMPLE),
                  "--deployment", str(deployed.record_file), "--db", f"sqlite:///{tmp_path}/e.db")
    assert out.returncode == 2 and "no-such-alias" in out.stderr
    # issue 13: a bad deal-record URL, or one whose database is down: exit 2 naming it (password hidden)
    for url, why in (("foo://bar", "Can't load plugin"), ("postgresql://nobody:sekret@127.0.0.1:1/x", "Connection refused")):
        out = _cli(kit, deployed, url)
        err = " ".join(out.stderr.split())
        assert out.returncode == 2 and "deal record" in err and why in err and "sekret" not in err, out.stderr
        assert "Traceback" not in out.stderr
    # issue 13: the deployment record of one deal never drives another deal's legs
    other = tmp_path / "other.yaml"
    other.write_text(EXAMPLE.read_text().replace("deal_id: demo-001", "deal_id: demo-002"))
    assert "deal_id: demo-002" in other.read_text()
    out = _cli(kit, deployed, f"sqlite:///{tmp_path}/f.db", "--deal", str(other))
    err = " ".join(out.stderr.split())
    assert out.returncode == 2 and "is deal 'demo-001''s vault, not deal 'demo-002''s" in err, out.stderr
    assert w3.eth.block_number == block


# ---- v2: TWAP, loss budget, new errors ----------------------------------------------------------


def test_buy_refused_when_the_pair_is_pushed_above_its_twap(chain, deployed, rec, kit):
    """Someone pumps the USDTz/cUSDT pair once the TWAP window has passed: the spot is far above
    the TWAP, the buy is refused before sending (exit 6) naming both prices; through run_leg the
    simulation's PriceAboveTwap revert is decoded by name."""
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="position")
    w3.provider.make_request("evm_increaseTime", [TWAP_WINDOW])
    w3.provider.make_request("evm_mine", [])
    before = spot_e6(w3, v)
    swap_on_pair(w3, kit.overlay, v.cusdt, v.usdtz, 400_000 * 10**6)  # buys USDTz: its price goes up
    after = spot_e6(w3, v)
    assert after * 10_000 > before * 10_100  # more than 100 bps up
    n0 = nonces(w3)
    with pytest.raises(CapError) as ei:
        run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True)
    assert ei.value.exit_code == EXIT_REFUSED == 6
    msg = str(ei.value)
    assert f"spot price {Decimal(after).scaleb(-6)}" in msg and "TWAP" in msg and "nothing sent" in msg
    twap = Decimal(msg.split("its TWAP ")[1].split(" ", maxsplit=1)[0])
    # the TWAP still stands at the price before the pump (within a second's weight of the new one)
    assert abs(twap - Decimal(before).scaleb(-6)) * 10_000 <= Decimal(before).scaleb(-6) * 50
    assert nonces(w3) == n0 and "buy" not in [l.leg for l in rec.legs("demo-001")]  # nothing sent
    # the vault itself refuses it too: the simulation's revert, decoded by name
    with pytest.raises(LegRejected, match=r"PriceAboveTwap\(spotE6=\d+, twapE6=\d+\)"):
        run_leg(deployed.spec, "buy", w3=w3, sender=op, record=rec, venues=v, args=(v.cusdt, 10**9, 0, 2**40))
    assert nonces(w3) == n0


def test_new_errors_decoded_by_name(chain, deployed, rec):
    """A buy right after split (TwapWindowShort with the split's block time) and a dust tranche
    (TrancheBelowMinimum) are refused by the simulation with the error's name and arguments;
    the other v2 errors decode from their ABI encoding too."""
    from eth_abi import encode
    from eth_utils import keccak as k

    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="position")
    t_split = split_block_time(w3, rec)
    with pytest.raises(LegRejected, match=rf"TwapWindowShort\(observedAt={t_split}, twapWindow={TWAP_WINDOW}\)"):
        run_leg(deployed.spec, "buy", w3=w3, sender=op, record=rec, venues=v, args=(v.cusdt, 10**9, 0, 2**40))
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True, until="buy")
    with pytest.raises(LegRejected, match=r"TrancheBelowMinimum\(amount=5000000, minTranche=1000000000\)"):
        run_leg(deployed.spec, "redeem", w3=w3, sender=op, record=rec, venues=v, args=(v.cusdt, 5 * 10**6))

    def data(sig: str, types: list[str], values: list) -> str:
        return "0x" + (k(text=sig)[:4] + encode(types, values)).hex()

    cases = [
        ("LossBudgetExceeded(uint256,uint256)", ["uint256", "uint256"], [75_000_000_001, 75_000_000_000],
         "LossBudgetExceeded(lossAfter=75000000001, budget=75000000000)"),
        ("PriceAboveTwap(uint256,uint256)", ["uint256", "uint256"], [820_000, 800_000], "PriceAboveTwap(spotE6=820000, twapE6=800000)"),
        ("PriceBelowTwap(uint256,uint256)", ["uint256", "uint256"], [780_000, 800_000], "PriceBelowTwap(spotE6=780000, twapE6=800000)"),
        ("DeleverageTooLarge(uint256,uint256)", ["uint256", "uint256"], [3, 2], "DeleverageTooLarge(proceedsBound=3, debt=2)"),
        ("GasTooLow(uint256,uint256)", ["uint256", "uint256"], [500_000, 567_301], "GasTooLow(available=500000, needed=567301)"),
        ("QueuedUntil(uint8,uint256)", ["uint8", "uint256"], [9, 1234], "QueuedUntil(param=TwapWindow(9), validAt=1234)"),
        ("NothingQueued(uint8)", ["uint8"], [8], "NothingQueued(param=MaxOperatorLossBps(8))"),
        ("CapAboveCeiling(uint256,uint256)", ["uint256", "uint256"], [1001, 1000], "CapAboveCeiling(value=1001, ceiling=1000)"),
        ("WrongPhase(uint8,uint256)", ["uint8", "uint256"], [5, 0x1c], "WrongPhase(current=HOLDING(5), allowedMask=28)"),
    ]
    for sig, types, values, want in cases:
        assert reason_text(data(sig, types, values)) == want


def _local_false(spec_path: Path, genesis: str):
    """The example deal as if on a real network (not local): the kit's genesis pinned."""
    roles = {r: resolver(f"TEST::{i}") for i, r in enumerate(("owner", "operator", "guardian"))}
    return spec_with(network={"name": "kit-as-real", "chain_id": 138, "local": False, "genesis_hash": genesis}, roles=roles)


def test_real_network_waits_for_the_twap_or_stops_resumable(chain, deployed, rec):
    """Not a local chain: the orchestrator never moves the clock. A readiness further away than
    max_wait stops with exit 4 (status waiting), nothing sent; a short one is waited for (the
    chain's clock advances with its blocks), then the buy goes through."""
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="position")
    genesis = "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()
    real = _local_false(EXAMPLE, genesis)
    ready = split_block_time(w3, rec) + TWAP_WINDOW
    block, n0 = w3.eth.block_number, nonces(w3)
    out = Lines()
    r = run_deal(real, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True, until="buy", max_wait=30, console=out)
    assert (r.status, r.exit_code) == ("waiting", EXIT_OWNER_ACTION)
    assert f"block time {ready}" in r.message and "--resume demo-001" in r.message and "maximum wait 30 s" in r.message
    assert w3.eth.block_number == block and nonces(w3) == n0  # nothing sent, the clock untouched
    # ~4 s before readiness, blocks every 0.5 s (anvil stamps them with the wall clock + the offset)
    now = int(w3.eth.get_block("latest")["timestamp"])
    w3.provider.make_request("evm_increaseTime", [ready - now - 4])
    w3.provider.make_request("evm_mine", [])
    stop = threading.Event()

    def miner():
        mw3 = Web3(Web3.HTTPProvider(w3.provider.endpoint_uri))
        while not stop.wait(0.5):
            mw3.provider.make_request("evm_mine", [])

    t = threading.Thread(target=miner, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        r = run_deal(real, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True, until="buy", max_wait=60, console=out)
        waited = time.monotonic() - t0
    finally:
        stop.set()
        t.join(timeout=5)
    assert r.status == "stopped" and [l.leg for l in r.legs] == ["buy"]
    assert "waiting" in out.text() and "for the TWAP observation" in out.text() and "advanced" not in out.text()
    assert waited >= 2  # it did wait for the chain's clock
    buy = r.legs[0]
    assert int(w3.eth.get_block(buy.block_number)["timestamp"]) >= ready


def test_min_tranche_raises_a_dust_tranche(chain, deployed, rec):
    """A ladder whose tranches (1 bps of a rung) are below the vault's minimum tranche: the
    orchestrator sends the minimum instead (the vault would revert TrancheBelowMinimum)."""
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    spec = spec_with(**{"ladder.tranche_bps": 1, "ladder.max_tranches": 2})
    r = run_deal(spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="monetize")
    assert r.status == "stopped"
    tr = rec.tranches("demo-001")
    assert [t.size for t in tr] == [1_000 * 10**6, 1_000 * 10**6] and all(t.ok for t in tr)
    assert 50_000 * 10**6 * 1 // 10_000 < 1_000 * 10**6  # what the spec alone would have sent


# ---- fees: EIP-1559 from the base fee, replace-by-fee, cancel (issue 13) ---------------------


def _automine(w3, on: bool) -> None:
    w3.provider.make_request("evm_setAutomine", [on])


def _wait_for(cond, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_leg_not_mined_is_replaced_at_a_higher_fee(chain, deployed, rec):
    """Issue 13: "auto" gas is EIP-1559 from the base fee (a type-2 transaction whose max fee is
    2 x base fee + the node's priority fee); a leg the chain does not mine within
    gas.replace_after_seconds is replaced (same nonce, same call, both fees +12.5% or more),
    recorded before it goes out; the replacement is what mines, the first transaction never
    does, and the nonce is used once."""
    from dealvault.signer import decode_raw

    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="split")
    spec = spec_with(gas={"mode": "auto", "replace_after_seconds": 1})
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    tip = int(w3.provider.make_request("eth_maxPriorityFeePerGas", [])["result"], 16)  # anvil's, from recent blocks
    n_op = w3.eth.get_transaction_count(op.address)
    other = open_record(rec.url.render_as_string(hide_password=False))
    out: dict = {}
    _automine(w3, False)
    try:
        t = threading.Thread(target=lambda: out.update(r=run_deal(spec, w3=w3, operator=op, owner=owner, record=rec, venues=v,
                                                                  resume=True, until="position")))
        t.start()
        supply = _wait_for(lambda: next((leg for leg in other.legs("demo-001") if leg.leg == "supply"), None), "the supply leg")
        attempts = _wait_for(lambda: a if len(a := other.attempts(supply)) >= 2 else None, "a replacement", timeout=30)
        pool = lambda: w3.provider.make_request("txpool_content", [])["result"]["pending"]  # noqa: E731
        _wait_for(lambda: attempts[1].tx_hash in json.dumps(pool()) and attempts[0].tx_hash not in json.dumps(pool()),
                  "the node's pool to hold the replacement instead of the first transaction")
        _automine(w3, True)
        w3.provider.make_request("evm_mine", [])
        t.join(120)
        assert not t.is_alive()
    finally:
        _automine(w3, True)
        other.close()
    assert out["r"].status == "stopped" and [leg.leg for leg in out["r"].legs] == ["supply", "borrow"]
    first, second = attempts[0], attempts[1]
    assert (first.kind, second.kind) == ("leg", "replacement") and first.nonce == second.nonce == n_op
    f1, f2 = decode_raw(first.raw_tx), decode_raw(second.raw_tx)
    assert f1["type"] == f2["type"] == 2
    assert f1["maxPriorityFeePerGas"] == tip and f1["maxFeePerGas"] == 2 * base + tip
    assert f2["maxFeePerGas"] * 1000 >= f1["maxFeePerGas"] * 1125 and f2["maxPriorityFeePerGas"] * 1000 >= f1["maxPriorityFeePerGas"] * 1125
    assert (f1["to"], f1["data"], f1["value"], f1["gas"]) == (f2["to"], f2["data"], f2["value"], f2["gas"])
    leg = rec.get_leg(supply.id)
    assert leg.status == "confirmed" and leg.tx_hash == second.tx_hash
    assert w3.eth.get_transaction_receipt(second.tx_hash)["status"] == 1
    from web3.exceptions import TransactionNotFound

    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(first.tx_hash)
    assert w3.eth.get_transaction_count(op.address) == n_op + 2  # supply (once) and borrow


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_broadcast_leg_that_no_longer_applies_is_cancelled(chain, kit, deployed, tmp_path, fresh_db):
    """Issue 13: a supply broadcast (the process killed after its broadcast, the node's pool lost
    it), then the guardian's hold(): on --resume the leg no longer applies, and because it went out
    (another node may still mine it) its nonce is released by a cancel (a 0-value transfer to the
    operator at that nonce, higher fees), recorded before it is sent; the leg is failed with the
    cancel named; the run stops in HOLDING (exit 3). After the owner's resume() the deal completes,
    the supply re-planned at a new nonce."""
    from web3.exceptions import TransactionNotFound

    from dealvault.signer import decode_raw

    w3, db, gate = chain, fresh_db(), tmp_path / "gate"
    op, owner = signers(w3)
    first = open_record(db)
    try:
        run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=first, venues=deployed.venues, until="split")
    finally:
        first.close()
    n_op = w3.eth.get_transaction_count(op.address)
    _automine(w3, False)
    try:
        p = _cli(kit, deployed, db, "--resume", "demo-001",
                 env={"DEALVAULT_TEST_HOOK": f"after-broadcast:{gate}", "DEALVAULT_TEST_HOOK_LEG": "1"}, wait=False)
        sent = reached_hook(p, gate)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        w3.provider.make_request("anvil_dropTransaction", [sent])
    finally:
        _automine(w3, True)
    _vault(w3, deployed).functions.hold().transact({"from": resolver("TEST::2")})  # the guardian
    out = _cli(kit, deployed, db, "--resume", "demo-001")
    assert out.returncode == EXIT_HOLDING, out.stdout + out.stderr
    err = " ".join(out.stderr.split())
    assert "no longer applies (the vault is in HOLDING" in err and f"cancelling nonce {n_op}" in err, err
    r = open_record(db)
    try:
        (leg,) = [x for x in r.legs("demo-001") if x.leg == "supply"]
        leg_tx, cancel = r.attempts(leg)
        assert (leg_tx.tx_hash, cancel.kind) == (sent, "cancel")
        assert leg.status == "failed" and f"released by the cancel {cancel.tx_hash}" in leg.error
    finally:
        r.close()
    c = decode_raw(cancel.raw_tx)
    assert (c["to"].lower(), c["value"], c["data"], c["nonce"]) == (op.address.lower(), 0, "0x", n_op)
    assert c["maxFeePerGas"] * 1000 >= decode_raw(leg_tx.raw_tx)["maxFeePerGas"] * 1125
    assert w3.eth.get_transaction_receipt(cancel.tx_hash)["status"] == 1
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(sent)
    assert w3.eth.get_transaction_count(op.address) == n_op + 1  # the cancel only
    _vault(w3, deployed).functions.resume().transact({"from": resolver("TEST::0")})  # the owner
    out = _cli(kit, deployed, db, "--resume", "demo-001", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["phase"] == "CLOSED"


# ---- execute_deal --unwind (issue 13) --------------------------------------------------------


def _risk(w3, v):
    from dealvault.vault import VaultClient

    return VaultClient(w3, v.vault, v.lens).risk_view()

@pytest.mark.parametrize("backend", ["sqlite"])  # the unwind is the subject; the unwind batches below run on both
def test_unwind_a_deal_stuck_with_debt_after_the_pair_moved(chain, kit, deployed, tmp_path, fresh_db, monkeypatch):
    """Issue 13: the deal positioned (collateral supplied, cUSDT borrowed), then the pair is pumped
    so no buy is possible, a month of interest accrues and the guardian holds the vault: no step
    can close it. `execute_deal --unwind` (a real process) repays from the books, deleverages the
    interest the books cannot cover (collateral sold for it, sized by the vault's bound), closes
    (exit 0, CLOSED, no debt left in the pool) and writes the owner's withdraw batch (simulated from
    the owner: ETH buckets and the stablecoin left, as the vault's books say)."""
    from dealvault.run import unwind as unwind_mod

    w3, v, db = chain, deployed.venues, fresh_db()
    monkeypatch.setattr(unwind_mod, "BATCH_DIR", tmp_path / "batches")
    op, owner = signers(w3)
    first = open_record(db)
    try:
        run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=first, venues=v, until="position")
    finally:
        first.close()
    w3.provider.make_request("evm_increaseTime", [TWAP_WINDOW])
    w3.provider.make_request("evm_mine", [])
    swap_on_pair(w3, kit.overlay, v.cusdt, v.usdtz, 400_000 * 10**6)  # the pair leaves the deal's limit
    out = _cli(kit, deployed, db, "--resume", "demo-001")
    assert out.returncode == EXIT_REFUSED, out.stdout + out.stderr  # stuck: the buy is refused
    w3.provider.make_request("evm_increaseTime", [30 * 86_400])  # a month of interest
    w3.provider.make_request("evm_mine", [])
    _vault(w3, deployed).functions.hold().transact({"from": resolver("TEST::2")})  # the guardian
    before = _risk(w3, v)
    assert before.debt > bal(w3, v.cusdt, v.vault)  # the books cannot repay it all
    env = {"DEALVAULT_BATCH_DIR": str(tmp_path / "batches")}
    out = _cli(kit, deployed, db, "--unwind", "demo-001", "--json", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    j = json.loads(out.stdout)
    assert j["status"] == "completed" and j["phase"] == "CLOSED" and j["debt"] == 0
    r = open_record(db)
    try:
        legs = [x.leg for x in r.legs("demo-001") if x.status == "confirmed"]
    finally:
        r.close()
    assert legs[-3:] == ["repay", "deleverage", "close"], legs
    after = _risk(w3, v)
    assert after.phase.name == "CLOSED" and after.poolDebt == 0 and after.debt == 0
    (batch_file,) = (tmp_path / "batches").glob("demo-001-unwind-*-withdraw.json")
    batch = json.loads(batch_file.read_text())
    eth = after.coreEth + after.workingEth + after.opportunisticEth
    values = [t["contractInputsValues"] for t in batch["transactions"]]
    assert values[0]["amount"] == str(eth) and values[1]["amount"] == str(after.stableHeld), values
    assert "meta" in batch and batch["meta"]["checksum"].startswith("0x")


def test_unwind_writes_the_owner_repay_batch_when_the_operator_cannot_repay(chain, kit, deployed, tmp_path, rec, monkeypatch):
    """Issue 13: the deleverage is impossible (the WETH9/cUSDT pair dumped far below the oracle:
    the sale would pay less than the vault's bound), the books hold less than the debt: the
    unwind repays what it can, then writes the owner's owner-repay batch (the debt + 1%,
    simulated from the owner, who holds the cUSDT) and stops with exit 4 naming the file;
    after the owner executes it, --unwind again closes the deal."""
    from dealvault.kit.funding import fund
    from dealvault.run import unwind as unwind_mod

    w3, v = chain, deployed.venues
    monkeypatch.setattr(unwind_mod, "BATCH_DIR", tmp_path / "batches")
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="position")
    w3.provider.make_request("evm_increaseTime", [30 * 86_400])
    w3.provider.make_request("evm_mine", [])
    swap_on_pair(w3, kit.overlay, v.weth9, v.cusdt, 5_000 * 10**18)  # ETH dumped on the pair
    fund(w3, v.cusdt, owner.address, 10_000 * 10**6)
    r = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, unwind=True)
    assert r.exit_code == EXIT_OWNER_ACTION, r.message
    (batch_file,) = (tmp_path / "batches").glob("demo-001-unwind-*-owner-repay.json")
    assert str(batch_file) in r.message and "simulated from the owner" in r.message
    rv = _risk(w3, v)
    assert rv.debt > 0 and rv.phase.name != "CLOSED"
    assert [x.leg for x in rec.legs("demo-001") if x.status == "confirmed"][-1] == "repay"
    batch = json.loads(batch_file.read_text())
    # the owner executes the Safe batch (here: its transactions sent from the owner's account)
    for t in batch["transactions"]:
        h = w3.eth.send_transaction({"from": owner.address, "to": t["to"], "data": t["data"], "value": int(t["value"])})
        assert w3.eth.wait_for_transaction_receipt(h, timeout=30)["status"] == 1, t
    assert _risk(w3, v).debt == 0
    r = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, unwind=True)
    assert r.exit_code == 0 and _risk(w3, v).phase.name == "CLOSED"


def test_unwind_writes_the_owner_close_batch_when_the_write_off_exceeds_the_operators_budget(chain, kit, deployed, tmp_path,
                                                                                                rec, monkeypatch):
    """Issue 13: USDTz bought, the desk halted (the ladder fails at once: HOLDING), the pair dumped
    below the sell floor: the USDTz can be neither redeemed nor sold. The unwind repays and
    deleverages the debt, but the operator's close would write the USDTz off at cost, beyond its
    loss budget (LossBudgetExceeded): it writes the owner's close batch (simulated from the owner)
    and exits 4; the owner's close closes the deal, the write-off booked."""
    from dealvault.kit.overlay import halt_desk
    from dealvault.run import unwind as unwind_mod

    w3, v = chain, deployed.venues
    monkeypatch.setattr(unwind_mod, "BATCH_DIR", tmp_path / "batches")
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="buy")
    from dealvault.kit.funding import fund

    halt_desk(w3, kit.overlay)
    swap_on_pair(w3, kit.overlay, v.usdtz, v.cusdt, 3_000_000 * 10**6)  # USDTz dumped: far below the 0.85 floor
    fund(w3, v.cusdt, owner.address, 2_000_000 * 10**6)

    def execute(pattern: str) -> None:  # the owner executes the Safe batch (here: from the owner's account)
        (batch_file,) = (tmp_path / "batches").glob(pattern)
        for t in json.loads(batch_file.read_text())["transactions"]:
            h = w3.eth.send_transaction({"from": owner.address, "to": t["to"], "data": t["data"], "value": int(t["value"])})
            assert w3.eth.wait_for_transaction_receipt(h, timeout=30)["status"] == 1, t
        batch_file.rename(batch_file.with_suffix(".done"))

    # a $1M deleverage through the pool would realize more than the operator's loss budget: refused,
    # so the owner repays what the books could not
    r = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, unwind=True)
    assert r.exit_code == EXIT_OWNER_ACTION and "owner-repay" in r.message and "is written to" in r.message, r.message
    execute("demo-001-unwind-*-owner-repay.json")
    assert _risk(w3, v).debt == 0
    r = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, unwind=True)
    assert r.exit_code == EXIT_OWNER_ACTION, r.message
    assert "LossBudgetExceeded" in r.message and "close) is written to" in r.message, r.message
    rv = _risk(w3, v)
    assert rv.debt == 0 and rv.usdtzHeld > 0 and rv.phase.name == "HOLDING"
    execute("demo-001-unwind-*-close.json")
    after = _risk(w3, v)
    assert after.phase.name == "CLOSED" and after.writtenOffUsdtz > 0
