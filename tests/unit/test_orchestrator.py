"""The orchestrator end to end on the kit (own anvil node: chain id 138 + mirror + overlay).

Expectations are computed here from raw reads (token balances, debt token, feed, nonces), never
from the vault's own math. Subprocess runs cover the CLI exit codes and crash safety.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal, localcontext
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from eth_utils import keccak
from web3 import Web3

from dealvault.deploy import AnvilSigner, ape_account, deal_params, deploy_vault
from dealvault.evm import revert, snapshot
from dealvault.kit import start_kit
from dealvault.netconfig import load_netconfig, write_local_config
from dealvault.orchestrator import (
    EXIT_INPUT,
    InputError,
    Venues,
    read_risk,
    run_deal,
)
from dealvault.paths import ROOT
from dealvault.record import open_record
from dealvault.signer import ApeAccountSigner
from dealvault.spec import load_spec, parse_spec
from helpers_db import BACKENDS, db_factory

EXAMPLE = ROOT / "deals" / "example.yaml"
APE = ROOT / ".venv" / "bin" / "ape"
ERC20 = [{"type": "function", "name": "balanceOf", "stateMutability": "view", "inputs": [{"type": "address", "name": "a"}],
          "outputs": [{"type": "uint256", "name": ""}]}]
FEED = [{"type": "function", "name": "latestRoundData", "stateMutability": "view", "inputs": [],
         "outputs": [{"type": "uint80", "name": "r"}, {"type": "int256", "name": "a"}, {"type": "uint256", "name": "s"},
                     {"type": "uint256", "name": "u"}, {"type": "uint80", "name": "ar"}]}]
PHASE = [{"type": "function", "name": "phase", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint8", "name": ""}]}]


def resolver(alias: str) -> str:
    return str(ape_account(alias).address)


@pytest.fixture(scope="module")
def kit():
    k = start_kit(overlay=True)
    yield k
    k.stop()


@pytest.fixture(scope="module")
def deployed(kit, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("orch")
    cfg = write_local_config(kit.w3, kit.mirror, kit.overlay, tmp / "local" / "t.config.yaml")
    spec = load_spec(EXAMPLE)
    res = deploy_vault(kit.w3, AnvilSigner(kit.w3, resolver("TEST::0")), load_netconfig(cfg), deal_params(spec, resolver),
                       deployments_dir=tmp / "dep", confirmations=1, poll=0.02)
    return SimpleNamespace(spec=spec, venues=Venues.from_deploy_record(res.record), record_file=res.record_path, tmp=tmp)


@pytest.fixture
def chain(kit, deployed):
    snap = snapshot(kit.w3)
    yield kit.w3
    revert(kit.w3, snap)


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
    report = run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=v)
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
    assert j["tranches_succeeded"] == 3 and j["rung_unlocked"] == 3
    assert sum(t["received"] for t in j["tranches"]) == sum(t.received for t in tr)
    assert j["gas_total"] == sum(int(w3.eth.get_transaction_receipt(l.tx_hash)["gasUsed"]) for l in legs)


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


# ---- real processes -------------------------------------------------------------------------


def _cli(kit, deployed, db_url, *extra, env=None, wait=True, rpc=None):
    args = [str(APE), "run", "execute_deal", "--rpc", rpc or kit.node.url, "--account", "TEST::1", "--owner-account", "TEST::0",
            "--deal", str(EXAMPLE), "--deployment", str(deployed.record_file), "--db", db_url, *extra]
    e = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx"), **(env or {})}
    if wait:
        return subprocess.run(args, cwd=ROOT, env=e, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(args, cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("hook,leg_no", [("after-broadcast", 3), ("before-broadcast", 5)])
def test_crash_sigkill_then_resume(chain, kit, deployed, tmp_path, fresh_db, hook, leg_no):
    w3 = chain
    db = fresh_db()
    gate = tmp_path / "gate"
    n0 = nonces(w3)
    p = _cli(kit, deployed, db, env={"DEALVAULT_TEST_HOOK": f"{hook}:{gate}", "DEALVAULT_TEST_HOOK_LEG": str(leg_no)}, wait=False)
    reached = Path(str(gate) + ".reached")
    deadline = time.monotonic() + 120
    while not reached.exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    crashed_hash = reached.read_text()
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


def test_cli_exit_codes_bad_input(chain, kit, deployed, tmp_path):
    w3 = chain
    block = w3.eth.block_number
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("target_ltv_bps: 2900", "target_ltv_bps: 3500"))
    out = _cli(kit, deployed, f"sqlite:///{tmp_path}/d.db", "--deal", str(bad))
    assert out.returncode == 2 and "target_ltv_bps" in out.stderr and "1..3000" in out.stderr
    out = subprocess.run([str(APE), "run", "execute_deal", "--rpc", kit.node.url, "--account", "no-such-alias", "--deal", str(EXAMPLE),
                          "--deployment", str(deployed.record_file), "--db", f"sqlite:///{tmp_path}/e.db"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no-such-alias" in out.stderr
    assert w3.eth.block_number == block
