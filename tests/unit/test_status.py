"""deal_status: rebuild a lost record from the vault's logs, and the watch flags at their edges.

The kit node and the deployed vault are the orchestrator tests' fixtures (imported, not copied).
DealVault v2: the live risk view and parameters come through the deployment's lens (the deal
record keeps it), typed (RiskView, Params); the flags include the operator loss against its
budget. The owner's batches (owner_tx) are tested in test_owner.py.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

import pytest
import test_orchestrator as orch
from eth_utils import to_checksum_address
from helpers_cli import ape_run

from dealvault.kit.overlay import halt_desk
from dealvault.record import open_record
from dealvault.run import run_deal
from dealvault.run.status import DEFAULT_MARGIN_BPS, Flag, Spread, rebuild_record, status_flags
from dealvault.vault import Params, RiskView, VaultClient
from dealvault.vault.client import from_abi

# the orchestrator tests' fixtures
kit, deployed, chain, backend, fresh_db, rec = orch.kit, orch.deployed, orch.chain, orch.backend, orch.fresh_db, orch.rec
APE, signers = orch.APE, orch.signers

UINT_MAX = 2**256 - 1


def _leg_rows(r, deal="demo-001"):
    return [(leg.leg_seq, leg.step, leg.leg, leg.status, leg.tx_hash, leg.nonce, leg.sender, leg.block_number, leg.gas_used, leg.effective_gas_price,
             leg.raw_tx) for leg in r.legs(deal)]


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
        for leg in lost.legs("demo-001"):  # gas and block straight from the node's receipts
            r = w3.eth.get_transaction_receipt(leg.tx_hash)
            assert (leg.gas_used, leg.block_number) == (int(r["gasUsed"]), int(r["blockNumber"]))
        snaps = [leg.risk_after["snapshot"] for leg in lost.legs("demo-001")]
        assert snaps == [leg.risk_after["snapshot"] for leg in rec.legs("demo-001")]
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

BUDGET = 75_000 * 10**6  # 6 dp USD: 50 bps of $15M
NOW = 1_700_000_000
#: the caps the flags check: maxLtvBps 3000, oracleMaxAge 3600 (the rest as a deal would have them)
PARAMS = Params(maxLtvBps=3000, maxExposureBps=2500, maxDeskFeeBps=100, oracleMaxAge=3600, minDiscountBps=500,
                maxSlippageBps=100, sellFloorPrice=900_000, ethFloorPrice=100_000_000_000, maxOperatorLossBps=50, twapWindow=300,
                loosenDelay=86_400, coreBps=3000, workingBps=5000, opportunisticBps=2000,
                rungs=(100_000 * 10**6, 250_000 * 10**6, 500_000 * 10**6), minTranche=10_000 * 10**6)


def risk(**kw) -> RiskView:
    """An independently built risk view: a healthy open position (no operator loss yet)."""
    base = {f.name: 0 for f in dataclasses.fields(RiskView)}
    base.update({"phase": 4, "phaseBeforeHolding": 0, "paused": False, "debt": 1_000_000 * 10**6, "ltvBps": 2500,
                 "healthFactor": 3 * 10**18, "priceUpdatedAt": NOW - 60, "oracleStatus": 0, "lossBudget": BUDGET})
    base.update(kw)
    return from_abi(RiskView, base)


def codes(flags):
    assert all(isinstance(f, Flag) for f in flags)
    return [f.code for f in flags]


def test_flags_none_when_healthy():
    assert status_flags(risk(), PARAMS, 200, now=NOW, spread=Spread(10, 300_000 * 10**6)) == []


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
    # issue 13: the default margin leaves a deal at the demo's target (2,900 bps of a 3,000 cap) unflagged
    assert codes(status_flags(risk(ltvBps=2900), PARAMS, now=NOW)) == []
    assert codes(status_flags(risk(ltvBps=3000 - DEFAULT_MARGIN_BPS), PARAMS, now=NOW)) == ["ltv-near-cap"]


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
    assert codes(status_flags(risk(), PARAMS, 200, now=NOW, spread=Spread(half - 1, spread))) == []
    assert codes(status_flags(risk(), PARAMS, 200, now=NOW, spread=Spread(half, spread))) == ["interest-vs-spread"]
    assert codes(status_flags(risk(), PARAMS, 200, now=NOW, spread=Spread(1, 0))) == ["interest-vs-spread"]
    assert codes(status_flags(risk(), PARAMS, 200, now=NOW, spread=Spread(0, 0))) == []
    assert codes(status_flags(risk(), PARAMS, 200, now=NOW, spread=Spread(spread // 10, spread),
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

    assert loss_budget_line(risk(operatorLoss=1_500_000_000, lossBudget=BUDGET)) == \
        "operator loss 1,500 of budget 75,000 USD (2.00%)"
    assert loss_budget_line(risk(operatorLoss=0, lossBudget=0)).endswith("(no budget before split)")


def test_flag_holding_and_combined():
    assert codes(status_flags(risk(phase=3), PARAMS, 200, now=NOW)) == []
    f = status_flags(risk(phase=5), PARAMS, 200, now=NOW)
    assert codes(f) == ["holding"] and f[0].severity == "critical"
    f = status_flags(risk(phase=5, ltvBps=2900, oracleStatus=1), PARAMS, 200, now=NOW)
    assert sorted(codes(f)) == ["holding", "ltv-near-cap", "oracle-stale"]


@pytest.mark.parametrize("backend", ["sqlite"])  # the record is incidental here
def test_flags_on_the_live_vault(chain, deployed, rec, kit):
    """The live risk view in HOLDING raises the holding flag; the spec's section works as params."""
    from dealvault.run.status import read_deal, spread_inputs, watch_params

    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="buy")
    halt_desk(w3, kit.overlay)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True)
    client = VaultClient(w3, v.vault, v.lens)  # through the lens its Venues named
    st = read_deal(client, rec, "demo-001")
    rv, now = st.risk, st.timestamp
    assert now == int(w3.eth.get_block("latest")["timestamp"]) and st.deal is not None and len(st.legs) == len(rec.legs("demo-001"))
    p = watch_params(st.params, deployed.spec)  # the spec may only tighten the vault's caps
    assert p.maxLtvBps == 3000 and p.oracleMaxAge == 3600 and p.maxOperatorLossBps == 50
    si = spread_inputs(client, v.deploy_block, rv)
    assert si.expected_spread > 0 and si.accrued_interest >= 0
    c = codes(status_flags(rv, p, 200, now=now, spread=si))
    assert "holding" in c
    # the spec's vault section as params (no spread inputs): the same LTV / oracle / holding verdicts
    c2 = codes(status_flags(rv, from_abi(Params, deployed.spec.vault.risk_params_dict()), 200, now=now))
    assert [x for x in c if x != "interest-vs-spread"] == c2


@pytest.mark.parametrize("backend", ["sqlite"])  # the record is incidental here
def test_deal_status_cli_rebuild_and_once(chain, deployed, rec, kit, tmp_path):
    """`ape run deal_status` (tests/unit/helpers_cli): --rebuild then --once on a HOLDING deal exits 1 with the holding flag."""
    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="buy")
    halt_desk(w3, kit.overlay)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, resume=True)
    db = f"sqlite:///{tmp_path}/cli.db"
    base = ["--rpc", kit.node.url, "--db", db]
    # no lens anywhere (no record yet, no --lens/--deployment, Chain 138's config names none): exit 2, nothing read
    out = ape_run("deal_status", *base, "--vault", v.vault, "--json")
    assert out.returncode == 2 and "no DealVaultLens known" in " ".join(out.stderr.split()), out.stdout + out.stderr
    out = ape_run("deal_status", *base, "--rebuild", "demo-001", "--vault", v.vault, "--from-block", str(v.deploy_block),
                  "--json", "--deployment", str(deployed.record_file))
    assert out.returncode == 0, out.stderr
    j = json.loads(out.stdout)
    assert [leg["tx_hash"] for leg in j["legs"]] == [leg.tx_hash for leg in rec.legs("demo-001")]
    assert j["risk"]["phaseName"] == "HOLDING" and "holding" in [f["code"] for f in j["flags"]]
    assert j["lens"] == v.lens and j["deal"]["lens_address"] == v.lens
    # the operator loss against its budget: 50 bps of the capital at the feed's price
    from test_orchestrator import FEED

    price = int(w3.eth.contract(address=v.feed, abi=FEED).functions.latestRoundData().call()[1])
    budget = deployed.spec.capital_wei * price // 10**20 * 50 // 10_000
    assert j["risk"]["lossBudget"] == budget and j["risk"]["operatorLoss"] == 0
    assert j["loss_budget"] == f"operator loss 0 of budget {Decimal(budget).scaleb(-6).normalize():,f} USD (0.00%)"
    # the deal record now names the lens: DEAL_ID alone is enough
    out = ape_run("deal_status", *base, "demo-001", "--once")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FLAG holding" in out.stdout and "operator loss 0 of budget" in " ".join(out.stdout.split())


def test_times_are_shown_as_utc_and_json_decimals_without_exponent():
    """Issue 13: `price updated at` was a raw epoch; JSON showed "0E-18"."""
    from decimal import Decimal

    from dealvault.jsonable import jsonable
    from dealvault.run.report import _cell

    assert _cell(1_796_010_589, None, "priceUpdatedAt") == "2026-11-30 03:49:49 UTC (1796010589)"
    assert _cell(0, None, "priceUpdatedAt") == "0"  # never read: shown as is
    assert jsonable({"a": Decimal("0E-18"), "b": Decimal("107351.80072300")}) == {"a": "0.000000000000000000", "b": "107351.80072300"}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_watch_survives_rpc_errors(chain, deployed, rec, monkeypatch):
    """Issue 13: `deal_status --watch` used to exit on the first RPC error; it says so and reads
    again at the next interval (exit 0 when stopped); `--once` still exits 5 on one."""
    import io

    from rich.console import Console

    import dealvault.run.status as status_mod
    from dealvault.errors import ChainError, ExitCode

    w3, v = chain, deployed.venues
    op, owner = signers(w3)
    run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="position")
    real, calls = status_mod.read_deal, []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise ChainError("riskView: the chain could not be reached (ConnectionError: refused)")
        return real(*a, **kw)

    monkeypatch.setattr(status_mod, "read_deal", flaky)
    out, err = io.StringIO(), io.StringIO()
    url = rec.url.render_as_string(hide_password=False)
    code = status_mod.watch(deal_id="demo-001", rpc=str(w3.provider.endpoint_uri), db_url=url, every=1, iterations=3,
                            out=Console(file=out, width=200), err=Console(file=err, width=200))
    assert code == ExitCode.OK and len(calls) == 3
    assert "read failed (1 in a row)" in err.getvalue() and "retrying in 1 s" in err.getvalue()
    assert out.getvalue().count("legSeq") >= 2  # two readings rendered, around the failed one
    calls.clear()
    calls.append(1)  # the next call fails
    code = status_mod.watch(deal_id="demo-001", rpc=str(w3.provider.endpoint_uri), db_url=url, once=True,
                            out=Console(file=io.StringIO()), err=Console(file=io.StringIO()))
    assert code == ExitCode.CHAIN
