"""deal_status: rebuild a lost record from the vault's logs, the watch flags at their edges, and
owner_tx's Safe Transaction Builder batches (decoded back with eth_abi).

The kit node and the deployed vault are the orchestrator tests' fixtures (imported, not copied).
DealVault v2: the live risk view and parameters come through the deployment's lens (the deal
record keeps it); the flags include the operator loss against its budget; owner_tx's parameter
changes are setParam(Param, value) (acceptParam / revokeParam), classified against the vault's
current and constructor values read through the lens (tighter: at once; looser: queued).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from dealvault.run import run_deal
from dealvault.kit.overlay import halt_desk
from dealvault.paths import ROOT
from dealvault.record import open_record
from dealvault.run.status import Flag, rebuild_record, status_flags
from test_orchestrator import APE, backend, chain, deployed, fresh_db, kit, rec, signers  # noqa: F401  (fixtures)

UINT_MAX = 2**256 - 1


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


owner_tx = _load_script("owner_tx")


def _leg_rows(r, deal="demo-001"):
    return [(l.leg_seq, l.step, l.leg, l.status, l.tx_hash, l.nonce, l.sender, l.block_number, l.gas_used, l.effective_gas_price,
             l.raw_tx) for l in r.legs(deal)]


def _tranche_rows(r, deal="demo-001"):
    return [(t.rung, t.size, t.received, t.fee, t.ok, t.reason) for t in r.tranches(deal)]


# ---- rebuild from logs -----------------------------------------------------------------------


def test_rebuild_completed_deal_from_logs(chain, deployed, rec, fresh_db):
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    report = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v)
    assert report.status == "completed"
    original = _leg_rows(rec)
    assert len(original) == 10
    lost = open_record(fresh_db("lost"))  # the record is gone: a fresh database
    try:
        res = rebuild_record(w3, v.vault, lost, "demo-001", from_block=v.deploy_block, lens=v.lens)
        assert res.added == list(range(1, 11)) and res.skipped == [] and res.tranches_added == 3
        assert lost.get_deal("demo-001").lens_address == v.lens == rec.get_deal("demo-001").lens_address
        assert _leg_rows(lost) == original  # legSeq, step, leg, status, tx hash, nonce, sender, block, gas, raw tx
        for l in lost.legs("demo-001"):  # gas and block straight from the node's receipts
            r = w3.eth.get_transaction_receipt(l.tx_hash)
            assert (l.gas_used, l.block_number) == (int(r["gasUsed"]), int(r["blockNumber"]))
        snaps = [l.risk_after["snapshot"] for l in lost.legs("demo-001")]
        assert snaps == [l.risk_after["snapshot"] for l in rec.legs("demo-001")]
        assert snaps[-1]["phaseName"] == "CLOSED"
        assert _tranche_rows(lost) == _tranche_rows(rec)
        assert [t.rung for t in lost.tranches("demo-001")] == [0, 1, 2]
        d = lost.get_deal("demo-001")
        assert d.status == "completed" and d.vault_address == v.vault and d.chain_id == 138
        st_new, st_old = lost.tranche_stats("demo-001"), rec.tranche_stats("demo-001")
        assert (st_new.attempted, st_new.succeeded, st_new.wilson_lower) == (st_old.attempted, st_old.succeeded, st_old.wilson_lower)
        # idempotent: a second rebuild adds nothing
        again = rebuild_record(w3, v.vault, lost, "demo-001", from_block=v.deploy_block)
        assert again.added == [] and again.skipped == list(range(1, 11)) and len(lost.tranches("demo-001")) == 3
    finally:
        lost.close()


def test_rebuild_partial_record_and_failed_tranche(chain, deployed, rec, kit, fresh_db):
    """A deal stopped in HOLDING (the desk halted: a RedemptionFailed tranche); the rebuild fills
    in a record that lost its last legs, and a fresh one equals the original."""
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    r1 = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="buy")
    assert r1.status == "stopped"
    halt_desk(w3, kit.overlay)
    r2 = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True)
    assert r2.status == "holding" and r2.exit_code == 3
    tr = _tranche_rows(rec)
    assert len(tr) == 1 and tr[0][4] is False and tr[0][2] == 0
    lost = open_record(fresh_db("lost"))
    try:
        res = rebuild_record(w3, v.vault, lost, "demo-001", from_block=v.deploy_block)
        assert _leg_rows(lost) == _leg_rows(rec)
        assert _tranche_rows(lost) == tr  # rung, size, received 0, fee 0, ok False, decoded reason
        assert lost.get_deal("demo-001").status == "holding"
        assert res.status == "holding"
    finally:
        lost.close()


def test_rebuild_refuses_wrong_vault(chain, deployed, rec):
    w3, v = chain, deployed.venues
    rec.create_deal(deployed.spec, chain_id=138, vault_address=to_checksum_address(v.pool))
    with pytest.raises(ValueError, match="recorded with vault"):
        rebuild_record(w3, v.vault, rec, "demo-001")
    with pytest.raises(ValueError, match="no contract"):
        rebuild_record(w3, "0x" + "12" * 20, rec, "other")


# ---- flags at their edges --------------------------------------------------------------------

PARAMS = {"maxLtvBps": 3000, "oracleMaxAge": 3600}
BUDGET = 75_000 * 10**6  # 6 dp USD: 50 bps of $15M
NOW = 1_700_000_000


def risk(**kw):
    """An independently built risk view: a healthy open position."""
    base = {"phase": 4, "debt": 1_000_000 * 10**6, "ltvBps": 2500, "healthFactor": 3 * 10**18, "priceUpdatedAt": NOW - 60,
            "oracleStatus": 0}
    base.update(kw)
    return base


def codes(flags):
    assert all(isinstance(f, Flag) for f in flags)
    return [f.code for f in flags]


def test_flags_none_when_healthy():
    assert status_flags(risk(), PARAMS, 200, now=NOW, accrued_interest=10, expected_spread=300_000 * 10**6) == []


def test_flag_ltv_edges():
    assert codes(status_flags(risk(ltvBps=2799), PARAMS, 200, now=NOW)) == []
    f = status_flags(risk(ltvBps=2800), PARAMS, 200, now=NOW)
    assert codes(f) == ["ltv-near-cap"] and f[0].severity == "warn"
    assert codes(status_flags(risk(ltvBps=3000), PARAMS, 200, now=NOW)) == ["ltv-near-cap"]
    f = status_flags(risk(ltvBps=3001), PARAMS, 200, now=NOW)
    assert codes(f) == ["ltv-over-cap"] and f[0].severity == "critical"
    # margin 0: only at the cap; no debt: never
    assert codes(status_flags(risk(ltvBps=2999), PARAMS, 0, now=NOW)) == []
    assert codes(status_flags(risk(ltvBps=3000), PARAMS, 0, now=NOW)) == ["ltv-near-cap"]
    assert codes(status_flags(risk(ltvBps=0, debt=0, healthFactor=UINT_MAX), PARAMS, 200, now=NOW)) == []


def test_flag_health_factor_edges():
    hf = int(Decimal("1.5") * 10**18)
    assert codes(status_flags(risk(healthFactor=hf), PARAMS, 200, now=NOW)) == []
    f = status_flags(risk(healthFactor=hf - 1), PARAMS, 200, now=NOW)
    assert codes(f) == ["health-factor"] and f[0].severity == "warn"
    assert status_flags(risk(healthFactor=10**18 - 1), PARAMS, 200, now=NOW)[0].severity == "critical"
    assert codes(status_flags(risk(healthFactor=2 * 10**18), PARAMS, 200, now=NOW, min_health_factor="2")) == []
    assert codes(status_flags(risk(healthFactor=2 * 10**18 - 1), PARAMS, 200, now=NOW, min_health_factor="2")) == ["health-factor"]


def test_flag_oracle_age_edges():
    # default margin 20%: warn from 2880 s (80% of 3600), critical over 3600 s or Stale/Invalid
    assert codes(status_flags(risk(priceUpdatedAt=NOW - 2879), PARAMS, 200, now=NOW)) == []
    assert codes(status_flags(risk(priceUpdatedAt=NOW - 2880), PARAMS, 200, now=NOW)) == ["oracle-age"]
    assert codes(status_flags(risk(priceUpdatedAt=NOW - 3600), PARAMS, 200, now=NOW)) == ["oracle-age"]
    f = status_flags(risk(priceUpdatedAt=NOW - 3601), PARAMS, 200, now=NOW)
    assert codes(f) == ["oracle-stale"] and f[0].severity == "critical"
    assert codes(status_flags(risk(oracleStatus=1), PARAMS, 200, now=NOW)) == ["oracle-stale"]
    assert codes(status_flags(risk(oracleStatus=2), PARAMS, 200, now=NOW)) == ["oracle-stale"]
    assert codes(status_flags(risk(priceUpdatedAt=NOW - 3599), PARAMS, 200, now=NOW, oracle_margin_bps=0)) == []


def test_flag_interest_vs_spread_edges():
    spread = 400_000 * 10**6  # expected discount profit
    half = spread * 5000 // 10_000
    assert codes(status_flags(risk(), PARAMS, 200, now=NOW, accrued_interest=half - 1, expected_spread=spread)) == []
    assert codes(status_flags(risk(), PARAMS, 200, now=NOW, accrued_interest=half, expected_spread=spread)) == ["interest-vs-spread"]
    assert codes(status_flags(risk(), PARAMS, 200, now=NOW, accrued_interest=1, expected_spread=0)) == ["interest-vs-spread"]
    assert codes(status_flags(risk(), PARAMS, 200, now=NOW, accrued_interest=0, expected_spread=0)) == []
    assert codes(status_flags(risk(), PARAMS, 200, now=NOW, accrued_interest=spread // 10, expected_spread=spread,
                              interest_share_bps=1000)) == ["interest-vs-spread"]


def test_flag_loss_budget_edges():
    """Warn from 80% of the budget (default margin 2000 bps), critical once it is used up; no
    flag without loss (nor before split, budget 0)."""
    warn_at = BUDGET * 8_000 // 10_000
    assert codes(status_flags(risk(operatorLoss=0, lossBudget=BUDGET), PARAMS, 200, now=NOW)) == []
    assert codes(status_flags(risk(operatorLoss=0, lossBudget=0), PARAMS, 200, now=NOW)) == []
    assert codes(status_flags(risk(operatorLoss=warn_at - 1, lossBudget=BUDGET), PARAMS, 200, now=NOW)) == []
    f = status_flags(risk(operatorLoss=warn_at, lossBudget=BUDGET), PARAMS, 200, now=NOW)
    assert codes(f) == ["loss-budget"] and f[0].severity == "warn" and "80.00% of the loss budget 75,000 (USD)" in f[0].message
    f = status_flags(risk(operatorLoss=BUDGET - 1, lossBudget=BUDGET), PARAMS, 200, now=NOW)
    assert f[0].severity == "warn"
    f = status_flags(risk(operatorLoss=BUDGET, lossBudget=BUDGET), PARAMS, 200, now=NOW)
    assert codes(f) == ["loss-budget"] and f[0].severity == "critical" and "LossBudgetExceeded" in f[0].message
    # margin 0: only a used-up budget
    assert codes(status_flags(risk(operatorLoss=BUDGET - 1, lossBudget=BUDGET), PARAMS, 200, now=NOW, loss_margin_bps=0)) == []
    f = status_flags(risk(operatorLoss=BUDGET, lossBudget=BUDGET), PARAMS, 200, now=NOW, loss_margin_bps=0)
    assert codes(f) == ["loss-budget"] and f[0].severity == "critical"


def test_loss_budget_line():
    from dealvault.run.status import loss_budget_line

    assert loss_budget_line({"operatorLoss": 1_500_000_000, "lossBudget": BUDGET}) == \
        "operator loss 1,500 of budget 75,000 USD (2.00%)"
    assert loss_budget_line({"operatorLoss": 0, "lossBudget": 0}).endswith("(no budget before split)")


def test_flag_holding_and_combined():
    assert codes(status_flags(risk(phase=3), PARAMS, 200, now=NOW)) == []
    f = status_flags(risk(phase=5), PARAMS, 200, now=NOW)
    assert codes(f) == ["holding"] and f[0].severity == "critical"
    f = status_flags(risk(phase=5, ltvBps=2900, oracleStatus=1), PARAMS, 200, now=NOW)
    assert sorted(codes(f)) == ["holding", "ltv-near-cap", "oracle-stale"]


@pytest.mark.parametrize("backend", ["sqlite"])  # the record is incidental here
def test_flags_on_the_live_vault(chain, deployed, rec, kit):
    """The live risk view in HOLDING raises the holding flag; the spec's section works as params."""
    from dealvault.run import read_risk
    from dealvault.run.status import spread_inputs, vault_params

    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="buy")
    halt_desk(w3, kit.overlay)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True)
    rv = read_risk(w3, v.vault)
    now = int(w3.eth.get_block("latest")["timestamp"])
    p = vault_params(w3, v.vault, deployed.spec)  # through the lens its Venues named
    assert p["maxLtvBps"] == 3000 and p["oracleMaxAge"] == 3600 and p["maxOperatorLossBps"] == 50
    si = spread_inputs(w3, v.vault, v.deploy_block, rv)
    assert si["expected_spread"] > 0 and si["accrued_interest"] >= 0
    c = codes(status_flags(rv, p, 200, now=now, **si))
    assert "holding" in c
    # the spec's vault section as params (no spread inputs): the same LTV / oracle / holding verdicts
    c2 = codes(status_flags(rv, deployed.spec.vault, 200, now=now))
    assert [x for x in c if x != "interest-vs-spread"] == c2


@pytest.mark.parametrize("backend", ["sqlite"])  # the record is incidental here
def test_deal_status_cli_rebuild_and_once(chain, deployed, rec, kit, tmp_path):
    """Real processes: --rebuild then --once on a HOLDING deal exits 1 with the holding flag."""
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="buy")
    halt_desk(w3, kit.overlay)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True)
    db = f"sqlite:///{tmp_path}/cli.db"
    env = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx")}
    base = [str(APE), "run", "deal_status", "--rpc", kit.node.url, "--db", db]
    # no lens anywhere (no record yet, no --lens/--deployment, Chain 138's config names none): exit 2, nothing read
    out = subprocess.run([*base, "--vault", v.vault, "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 2 and "no DealVaultLens known" in " ".join(out.stderr.split()), out.stdout + out.stderr
    out = subprocess.run([*base, "--rebuild", "demo-001", "--vault", v.vault, "--from-block", str(v.deploy_block), "--json",
                          "--deployment", str(deployed.record_file)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    j = json.loads(out.stdout)
    assert [l["tx_hash"] for l in j["legs"]] == [l.tx_hash for l in rec.legs("demo-001")]
    assert j["risk"]["phaseName"] == "HOLDING" and "holding" in [f["code"] for f in j["flags"]]
    assert j["lens"] == v.lens and j["deal"]["lens_address"] == v.lens
    # the operator loss against its budget: 50 bps of the capital at the feed's price
    from test_orchestrator import FEED

    price = int(w3.eth.contract(address=v.feed, abi=FEED).functions.latestRoundData().call()[1])
    budget = deployed.spec.capital_wei * price // 10**20 * 50 // 10_000
    assert j["risk"]["lossBudget"] == budget and j["risk"]["operatorLoss"] == 0
    assert j["loss_budget"] == f"operator loss 0 of budget {Decimal(budget).scaleb(-6).normalize():,f} USD (0.00%)"
    # the deal record now names the lens: DEAL_ID alone is enough
    out = subprocess.run([*base, "demo-001", "--once"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FLAG holding" in out.stdout and "operator loss 0 of budget" in " ".join(out.stdout.split())


# ---- owner_tx -----------------------------------------------------------------------------------

VAULT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CUSDT = "0x" + "ab" * 20


def _call(tx, sig, types):
    data = bytes.fromhex(tx["data"][2:])
    assert data[:4] == function_signature_to_4byte_selector(sig)
    return tuple(x.lower() if isinstance(x, str) else x for x in decode(types, data[4:]))


def test_owner_tx_batches_decode(tmp_path):
    dep = tmp_path / "dep.json"
    dep.write_text(json.dumps({"constructor_args": {"decoded": {"cusdt": to_checksum_address(CUSDT), "cusdc": "0x" + "cd" * 20}}}))
    b = owner_tx.build_batch("fund", ["5000.5"], vault=VAULT)
    assert b["version"] == "1.0" and b["chainId"] == "138" and b["meta"]["name"] and "5000.5 ETH" in b["meta"]["description"]
    (t,) = b["transactions"]
    assert t["to"] == VAULT and t["value"] == str(5000_5 * 10**17) and t["data"] == "0x" + function_signature_to_4byte_selector("fund()").hex()
    assert t["contractMethod"]["name"] == "fund" and t["contractMethod"]["payable"] is True

    b = owner_tx.build_batch("owner-repay", ["cUSDT", "1250.000001"], vault=VAULT, deployment=dep)
    approve, repay = b["transactions"]
    amt = 1_250_000_001
    assert approve["to"] == to_checksum_address(CUSDT) and approve["value"] == "0"
    assert _call(approve, "approve(address,uint256)", ["address", "uint256"]) == (VAULT.lower(), amt)
    assert repay["to"] == VAULT
    assert _call(repay, "ownerRepay(address,uint256)", ["address", "uint256"]) == (CUSDT.lower(), amt)
    assert repay["contractInputsValues"] == {"stable": to_checksum_address(CUSDT), "amount": str(amt)}

    b = owner_tx.build_batch("withdraw", ["ETH", "12.5"], vault=VAULT)
    assert _call(b["transactions"][0], "withdraw(address,uint256)", ["address", "uint256"]) == ("0x" + "00" * 20, 125 * 10**17)
    b = owner_tx.build_batch("withdraw", [CUSDT, "3"], vault=VAULT, decimals=6)
    assert _call(b["transactions"][0], "withdraw(address,uint256)", ["address", "uint256"]) == (CUSDT.lower(), 3 * 10**6)

    for action in ("resume", "pause", "unpause", "hold"):
        (t,) = owner_tx.build_batch(action, [], vault=VAULT)["transactions"]
        assert t["data"] == "0x" + function_signature_to_4byte_selector(f"{action}()").hex() and t["value"] == "0"

    # v2: parameter changes are setParam(Param, value); `tighten` and the v1 setter names still work as aliases
    t = owner_tx.build_batch("tighten", ["max-ltv-bps", "2500"], vault=VAULT)["transactions"][0]
    assert _call(t, "setParam(uint8,uint256)", ["uint8", "uint256"]) == (0, 2500)
    assert t["contractMethod"]["name"] == "setParam" and t["contractInputsValues"] == {"param": "0", "value": "2500"}
    t = owner_tx.build_batch("setOracleMaxAge", ["1800"], vault=VAULT)["transactions"][0]
    assert _call(t, "setParam(uint8,uint256)", ["uint8", "uint256"]) == (3, 1800)
    t = owner_tx.build_batch("set", ["sell-floor-price", "0.9"], vault=VAULT)["transactions"][0]
    assert _call(t, "setParam(uint8,uint256)", ["uint8", "uint256"]) == (6, 900_000)
    t = owner_tx.build_batch("set", ["eth-floor-price", "1750.5"], vault=VAULT)["transactions"][0]
    assert _call(t, "setParam(uint8,uint256)", ["uint8", "uint256"]) == (7, 175_050_000_000)
    b = owner_tx.build_batch("set", ["max-operator-loss-bps", "40", "twap-window", "3600", "loosen-delay", "172800"], vault=VAULT)
    assert [_call(t, "setParam(uint8,uint256)", ["uint8", "uint256"]) for t in b["transactions"]] == [(8, 40), (9, 3600), (10, 172_800)]
    assert "QUEUED" in b["meta"]["description"] and "pass --rpc" in b["meta"]["description"]  # both cases said, unknown which
    (t,) = owner_tx.build_batch("accept", ["twap-window"], vault=VAULT)["transactions"]
    assert _call(t, "acceptParam(uint8)", ["uint8"]) == (9,)
    a, r = owner_tx.build_batch("revoke", ["MaxSlippageBps", "loosen_delay"], vault=VAULT)["transactions"]
    assert (_call(a, "revokeParam(uint8)", ["uint8"]), _call(r, "revokeParam(uint8)", ["uint8"])) == ((5,), (10,))

    # with the vault's values (as lens.params / initialParams give them): which act at once, which are queued
    cur = {"maxLtvBps": 2500, "twapWindow": 1800, "maxSlippageBps": 80, "minDiscountBps": 500}
    init = {"maxLtvBps": 3000, "twapWindow": 300, "maxSlippageBps": 100, "minDiscountBps": 500}
    b = owner_tx.build_batch("set", ["max-ltv-bps", "2000", "twap-window", "600", "max-slippage-bps", "100",
                                     "min-discount-bps", "500"], vault=VAULT, current=cur, initial=init, loosen_delay=86_400,
                             now=1_700_000_000)
    d = b["meta"]["description"]
    assert "1. setParam(MaxLtvBps = 0, 2000)" in d and "tightens 2500 -> 2000: acts at once" in d
    assert "2. setParam(TwapWindow = 9, 600)" in d and "loosens 1800 -> 600: QUEUED for loosenDelay 86400 s" in d
    assert "valid from block time 1700086400" in d
    assert "3. setParam(MaxSlippageBps = 5, 100)" in d and "loosens 80 -> 100: QUEUED" in d
    assert "equal to the current value 500: acts at once" in d
    assert "queued (need acceptParam after loosenDelay): twap-window, max-slippage-bps; at once: max-ltv-bps, min-discount-bps" in d
    assert b["meta"]["name"] == "DealVault: setParam x 4 (2 queued)"
    # looser than the constructor's value: the vault would revert CapAboveCeiling: refused here
    with pytest.raises(owner_tx.OwnerTxError, match="CapAboveCeiling"):
        owner_tx.build_batch("set", ["max-slippage-bps", "101"], vault=VAULT, current=cur, initial=init)
    with pytest.raises(owner_tx.OwnerTxError, match=r"twap-window: 299 is looser than the constructor's value 300"):
        owner_tx.build_batch("set", ["twap-window", "299"], vault=VAULT, current=cur, initial=init)

    out = tmp_path / "b.json"
    assert owner_tx.main("pause", [], vault=VAULT, out=out) == 0
    assert json.loads(out.read_text())["transactions"][0]["contractMethod"]["name"] == "pause"


@pytest.mark.parametrize("action,args,vault,match", [
    ("launch", [], VAULT, "unknown action"),
    ("fund", ["-1"], VAULT, "negative"),
    ("fund", ["0"], VAULT, "must be > 0"),
    ("fund", ["1.0000000000000000001"], VAULT, "more than 18 decimals"),
    ("fund", ["abc"], VAULT, "not a number"),
    ("fund", [], VAULT, "expects 1 argument"),
    ("pause", [], "0x1234", "not an address"),
    ("pause", [], VAULT.replace("F", "f", 1), "checksum"),
    ("tighten", ["max-ltv-bps", "3001"], VAULT, "out of range"),
    ("tighten", ["max-leverage", "1"], VAULT, "unknown parameter"),
    ("set", ["max-operator-loss-bps", "1001"], VAULT, "out of range"),
    ("set", ["twap-window", "0"], VAULT, "must be > 0"),
    ("set", ["twap-window", "65536"], VAULT, "out of range"),
    ("set", ["loosen-delay", str(30 * 86400 + 1)], VAULT, "out of range"),
    ("set", ["eth-floor-price", "100000000.00000001"], VAULT, "out of range"),
    ("set", ["max-ltv-bps"], VAULT, "PARAM VALUE pairs"),
    ("set", ["max-ltv-bps", "1", "max-ltv-bps", "2"], VAULT, "given twice"),
    ("accept", [], VAULT, "at least one PARAM"),
    ("revoke", ["min-tranche"], VAULT, "unknown parameter"),
    ("withdraw", ["0x" + "ab" * 20, "1"], VAULT, "--decimals"),
])
def test_owner_tx_bad_input(tmp_path, action, args, vault, match):
    out = tmp_path / "o.json"
    with pytest.raises(owner_tx.OwnerTxError, match=match):
        owner_tx.build_batch(action, args, vault=vault)
    assert owner_tx.main(action, args, vault=vault, out=out) == 2
    assert not out.exists()


def test_owner_tx_cli_exit_2_negative_amount(tmp_path):
    out = tmp_path / "never.json"
    env = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx")}
    p = subprocess.run([str(APE), "run", "owner_tx", "fund", "-5", "--vault", VAULT, "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "negative" in p.stderr and "nothing written" in p.stderr
    assert not out.exists()
    p = subprocess.run([str(APE), "run", "owner_tx", "resume", "--vault", VAULT, "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    (t,) = json.loads(out.read_text())["transactions"]
    assert t["to"] == VAULT and t["data"] == "0x" + function_signature_to_4byte_selector("resume()").hex()


def test_owner_tx_set_against_the_live_vault(chain, deployed, tmp_path):
    """owner_tx --rpc reads the vault through the deployment's lens: after the owner tightened
    maxSlippageBps on chain, setting it back is reported QUEUED and a further tightening at once;
    the batch's transactions, executed by the owner, do exactly that on chain (RiskParamQueued /
    RiskParamSet, read from the receipts' raw logs)."""
    from eth_utils import keccak

    w3, v = chain, deployed.venues
    owner = signers(w3)[1].address
    vault = v.vault

    def send(tx):
        h = w3.eth.send_transaction({"from": owner, "to": tx["to"], "data": tx["data"], "value": int(tx["value"]), "gas": 300_000})
        r = w3.eth.wait_for_transaction_receipt(h)
        assert r["status"] == 1
        return r

    w3.provider.make_request("anvil_impersonateAccount", [owner])
    try:
        first = tmp_path / "t.json"
        assert owner_tx.main("set", ["max-slippage-bps", "80"], vault=vault, out=first, rpc=str(w3.provider.endpoint_uri),
                             deployment=deployed.record_file) == 0
        b = json.loads(first.read_text())
        assert "tightens 100 -> 80: acts at once" in b["meta"]["description"]
        r = send(b["transactions"][0])
        set_topic = keccak(text="RiskParamSet(uint8,uint256,uint256)")
        assert any(bytes(l["topics"][0]) == set_topic and int.from_bytes(bytes(l["topics"][1]), "big") == 5 for l in r["logs"])
        second = tmp_path / "q.json"
        assert owner_tx.main("set", ["max-slippage-bps", "100", "max-ltv-bps", "2800"], vault=vault, out=second,
                             rpc=str(w3.provider.endpoint_uri), deployment=deployed.record_file) == 0
        b = json.loads(second.read_text())
        d = b["meta"]["description"]
        assert "loosens 80 -> 100: QUEUED for loosenDelay 86400 s" in d and "tightens 3000 -> 2800: acts at once" in d
        queued_topic = keccak(text="RiskParamQueued(uint8,uint256,uint256)")
        r = send(b["transactions"][0])
        (q,) = [l for l in r["logs"] if bytes(l["topics"][0]) == queued_topic]
        value, valid_at = int.from_bytes(bytes(q["data"])[:32], "big"), int.from_bytes(bytes(q["data"])[32:], "big")
        assert int.from_bytes(bytes(q["topics"][1]), "big") == 5 and value == 100
        assert valid_at == int(w3.eth.get_block(r["blockNumber"])["timestamp"]) + 86_400
        r = send(b["transactions"][1])
        assert any(bytes(l["topics"][0]) == set_topic and int.from_bytes(bytes(l["topics"][1]), "big") == 0 for l in r["logs"])
        # past the constructor's value: refused before writing anything
        never = tmp_path / "never.json"
        assert owner_tx.main("set", ["max-ltv-bps", "3001"], vault=vault, out=never, rpc=str(w3.provider.endpoint_uri),
                             deployment=deployed.record_file) == 2
        assert owner_tx.main("set", ["max-slippage-bps", "150"], vault=vault, out=never, rpc=str(w3.provider.endpoint_uri),
                             deployment=deployed.record_file) == 2
        assert not never.exists()
    finally:
        w3.provider.make_request("anvil_stopImpersonatingAccount", [owner])
