"""The owner's Safe Transaction Builder batches (dealvault.run.owner, `ape run owner_tx`), decoded
back with eth_abi.

DealVault v2: parameter changes are setParam(Param, value) (acceptParam / revokeParam), each
parameter the one of dealvault.vault.params (its Param, floor, limit, which way is tighter),
classified against the vault's current and constructor values read through the lens (tighter:
at once; looser: queued). The kit node and the deployed vault are the orchestrator tests'
fixtures (imported, not copied).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess

import pytest
import test_orchestrator as orch
from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from dealvault.errors import ExitCode, InputError
from dealvault.paths import ROOT
from dealvault.run import owner
from dealvault.run.owner import OwnerTxError, ParamState
from dealvault.vault import Param, Params
from dealvault.vault.params import BY_PARAM

kit, deployed, chain = orch.kit, orch.deployed, orch.chain  # the orchestrator tests' fixtures

VAULT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CUSDT = "0x" + "ab" * 20


#: the vault's parameters as lens.params gives them (the test cases replace the fields they are about)
BASE = Params(maxLtvBps=3000, maxExposureBps=2500, maxDeskFeeBps=100, oracleMaxAge=3600, minDiscountBps=500, maxSlippageBps=100,
              sellFloorPrice=900_000, ethFloorPrice=100_000_000_000, maxOperatorLossBps=50, twapWindow=300, loosenDelay=86_400,
              coreBps=3000, workingBps=5000, opportunisticBps=2000, rungs=(100_000 * 10**6, 250_000 * 10**6, 500_000 * 10**6),
              minTranche=10_000 * 10**6)


def params(**changes) -> Params:
    return dataclasses.replace(BASE, **changes)


def _call(tx, sig, types):
    data = bytes.fromhex(tx["data"][2:])
    assert data[:4] == function_signature_to_4byte_selector(sig)
    return tuple(x.lower() if isinstance(x, str) else x for x in decode(types, data[4:]))


def test_owner_tx_batches_decode(tmp_path):
    dep = tmp_path / "dep.json"
    dep.write_text(json.dumps({"constructor_args": {"decoded": {"cusdt": to_checksum_address(CUSDT), "cusdc": "0x" + "cd" * 20}}}))
    b = owner.build_batch("fund", ["5000.5"], vault=VAULT)
    assert b["version"] == "1.0" and b["chainId"] == "138" and b["meta"]["name"] and "5000.5 ETH" in b["meta"]["description"]
    (t,) = b["transactions"]
    assert t["to"] == VAULT and t["value"] == str(5000_5 * 10**17) and t["data"] == "0x" + function_signature_to_4byte_selector("fund()").hex()
    assert t["contractMethod"]["name"] == "fund" and t["contractMethod"]["payable"] is True

    b = owner.build_batch("owner-repay", ["cUSDT", "1250.000001"], vault=VAULT, deployment=dep)
    approve, repay = b["transactions"]
    amt = 1_250_000_001
    assert approve["to"] == to_checksum_address(CUSDT) and approve["value"] == "0"
    assert _call(approve, "approve(address,uint256)", ["address", "uint256"]) == (VAULT.lower(), amt)
    assert repay["to"] == VAULT
    assert _call(repay, "ownerRepay(address,uint256)", ["address", "uint256"]) == (CUSDT.lower(), amt)
    assert repay["contractInputsValues"] == {"stable": to_checksum_address(CUSDT), "amount": str(amt)}

    b = owner.build_batch("withdraw", ["ETH", "12.5"], vault=VAULT)
    assert _call(b["transactions"][0], "withdraw(address,uint256)", ["address", "uint256"]) == ("0x" + "00" * 20, 125 * 10**17)
    b = owner.build_batch("withdraw", [CUSDT, "3"], vault=VAULT, decimals=6)
    assert _call(b["transactions"][0], "withdraw(address,uint256)", ["address", "uint256"]) == (CUSDT.lower(), 3 * 10**6)

    for action in ("resume", "pause", "unpause", "hold"):
        (t,) = owner.build_batch(action, [], vault=VAULT)["transactions"]
        assert t["data"] == "0x" + function_signature_to_4byte_selector(f"{action}()").hex() and t["value"] == "0"

    # v2: parameter changes are setParam(Param, value); `tighten` and the v1 setter names still work as aliases
    t = owner.build_batch("tighten", ["max-ltv-bps", "2500"], vault=VAULT)["transactions"][0]
    assert _call(t, "setParam(uint8,uint256)", ["uint8", "uint256"]) == (0, 2500)
    assert t["contractMethod"]["name"] == "setParam" and t["contractInputsValues"] == {"param": "0", "value": "2500"}
    t = owner.build_batch("setOracleMaxAge", ["1800"], vault=VAULT)["transactions"][0]
    assert _call(t, "setParam(uint8,uint256)", ["uint8", "uint256"]) == (3, 1800)
    t = owner.build_batch("set", ["sell-floor-price", "0.9"], vault=VAULT)["transactions"][0]
    assert _call(t, "setParam(uint8,uint256)", ["uint8", "uint256"]) == (6, 900_000)
    t = owner.build_batch("set", ["eth-floor-price", "1750.5"], vault=VAULT)["transactions"][0]
    assert _call(t, "setParam(uint8,uint256)", ["uint8", "uint256"]) == (7, 175_050_000_000)
    b = owner.build_batch("set", ["max-operator-loss-bps", "40", "twap-window", "3600", "loosen-delay", "172800"], vault=VAULT)
    assert [_call(t, "setParam(uint8,uint256)", ["uint8", "uint256"]) for t in b["transactions"]] == [(8, 40), (9, 3600), (10, 172_800)]
    assert "QUEUED" in b["meta"]["description"] and "pass --rpc" in b["meta"]["description"]  # both cases said, unknown which
    (t,) = owner.build_batch("accept", ["twap-window"], vault=VAULT)["transactions"]
    assert _call(t, "acceptParam(uint8)", ["uint8"]) == (9,)
    a, r = owner.build_batch("revoke", ["MaxSlippageBps", "loosen_delay"], vault=VAULT)["transactions"]
    assert (_call(a, "revokeParam(uint8)", ["uint8"]), _call(r, "revokeParam(uint8)", ["uint8"])) == ((5,), (10,))

    # with the vault's values (as lens.params / initialParams give them): which act at once, which are queued
    cur = params(maxLtvBps=2500, twapWindow=1800, maxSlippageBps=80, minDiscountBps=500, loosenDelay=86_400)
    init = params(maxLtvBps=3000, twapWindow=300, maxSlippageBps=100, minDiscountBps=500)
    b = owner.build_batch("set", ["max-ltv-bps", "2000", "twap-window", "600", "max-slippage-bps", "100",
                                  "min-discount-bps", "500"], vault=VAULT, state=ParamState(cur, init, now=1_700_000_000))
    d = b["meta"]["description"]
    assert "1. setParam(MaxLtvBps = 0, 2000)" in d and "tightens 2500 -> 2000: acts at once" in d
    assert "2. setParam(TwapWindow = 9, 600)" in d and "loosens 1800 -> 600: QUEUED for loosenDelay 86400 s" in d
    assert "valid from block time 1700086400" in d
    assert "3. setParam(MaxSlippageBps = 5, 100)" in d and "loosens 80 -> 100: QUEUED" in d
    assert "equal to the current value 500: acts at once" in d
    assert "queued (need acceptParam after loosenDelay): twap-window, max-slippage-bps; at once: max-ltv-bps, min-discount-bps" in d
    assert b["meta"]["name"] == "DealVault: setParam x 4 (2 queued)"
    # looser than the constructor's value: the vault would revert CapAboveCeiling: refused here
    with pytest.raises(OwnerTxError, match="CapAboveCeiling"):
        owner.build_batch("set", ["max-slippage-bps", "101"], vault=VAULT, state=ParamState(cur, init))
    with pytest.raises(OwnerTxError, match=r"twap-window: 299 is looser than the constructor's value 300"):
        owner.build_batch("set", ["twap-window", "299"], vault=VAULT, state=ParamState(cur, init))

    out = tmp_path / "b.json"
    assert owner.owner_tx("pause", [], vault=VAULT, out=out) == 0
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
    ("set", ["loosen-delay", "3599"], VAULT, r"out of range \(min 3600\)"),  # ParamTable's floor: an hour
    ("set", ["eth-floor-price", "100000000.00000001"], VAULT, "out of range"),
    ("set", ["max-ltv-bps"], VAULT, "PARAM VALUE pairs"),
    ("set", ["max-ltv-bps", "1", "max-ltv-bps", "2"], VAULT, "given twice"),
    ("accept", [], VAULT, "at least one PARAM"),
    ("revoke", ["min-tranche"], VAULT, "unknown parameter"),
    ("withdraw", ["0x" + "ab" * 20, "1"], VAULT, "--decimals"),
])
def test_owner_tx_bad_input(tmp_path, action, args, vault, match):
    out = tmp_path / "o.json"
    with pytest.raises(OwnerTxError, match=match):
        owner.build_batch(action, args, vault=vault)
    assert owner.owner_tx(action, args, vault=vault, out=out) == 2
    assert not out.exists()


def test_owner_tx_cli_exit_2_negative_amount(tmp_path):
    out = tmp_path / "never.json"
    env = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx")}
    p = subprocess.run([str(orch.APE), "run", "owner_tx", "fund", "-5", "--vault", VAULT, "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=180, check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "negative" in p.stderr and "nothing written" in p.stderr
    assert not out.exists()
    p = subprocess.run([str(orch.APE), "run", "owner_tx", "resume", "--vault", VAULT, "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=180, check=False)
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
    owner_address = orch.signers(w3)[1].address
    vault = v.vault

    def send(tx):
        h = w3.eth.send_transaction({"from": owner_address, "to": tx["to"], "data": tx["data"], "value": int(tx["value"]), "gas": 300_000})
        r = w3.eth.wait_for_transaction_receipt(h)
        assert r["status"] == 1
        return r

    w3.provider.make_request("anvil_impersonateAccount", [owner_address])
    try:
        first = tmp_path / "t.json"
        assert owner.owner_tx("set", ["max-slippage-bps", "80"], vault=vault, out=first, rpc=str(w3.provider.endpoint_uri),
                             deployment=deployed.record_file) == 0
        b = json.loads(first.read_text())
        assert "tightens 100 -> 80: acts at once" in b["meta"]["description"]
        r = send(b["transactions"][0])
        set_topic = keccak(text="RiskParamSet(uint8,uint256,uint256)")
        assert any(bytes(log["topics"][0]) == set_topic and int.from_bytes(bytes(log["topics"][1]), "big") == 5 for log in r["logs"])
        second = tmp_path / "q.json"
        assert owner.owner_tx("set", ["max-slippage-bps", "100", "max-ltv-bps", "2800"], vault=vault, out=second,
                             rpc=str(w3.provider.endpoint_uri), deployment=deployed.record_file) == 0
        b = json.loads(second.read_text())
        d = b["meta"]["description"]
        assert "loosens 80 -> 100: QUEUED for loosenDelay 86400 s" in d and "tightens 3000 -> 2800: acts at once" in d
        queued_topic = keccak(text="RiskParamQueued(uint8,uint256,uint256)")
        r = send(b["transactions"][0])
        (q,) = [log for log in r["logs"] if bytes(log["topics"][0]) == queued_topic]
        value, valid_at = int.from_bytes(bytes(q["data"])[:32], "big"), int.from_bytes(bytes(q["data"])[32:], "big")
        assert int.from_bytes(bytes(q["topics"][1]), "big") == 5 and value == 100
        assert valid_at == int(w3.eth.get_block(r["blockNumber"])["timestamp"]) + 86_400
        r = send(b["transactions"][1])
        assert any(bytes(log["topics"][0]) == set_topic and int.from_bytes(bytes(log["topics"][1]), "big") == 0 for log in r["logs"])
        # past the constructor's value: refused before writing anything
        never = tmp_path / "never.json"
        assert owner.owner_tx("set", ["max-ltv-bps", "3001"], vault=vault, out=never, rpc=str(w3.provider.endpoint_uri),
                             deployment=deployed.record_file) == 2
        assert owner.owner_tx("set", ["max-slippage-bps", "150"], vault=vault, out=never, rpc=str(w3.provider.endpoint_uri),
                             deployment=deployed.record_file) == 2
        assert not never.exists()
    finally:
        w3.provider.make_request("anvil_stopImpersonatingAccount", [owner_address])


def test_owner_params_are_the_schema():
    """Every IDealVault.Param is settable by its deal-spec key with dashes, with the schema's floor and limit."""
    assert [s.param for s in owner.SETTABLE.values()] == list(Param)
    for name, spec in owner.SETTABLE.items():
        assert BY_PARAM[spec.param] is spec and name == spec.key.replace("_", "-")
    with pytest.raises(OwnerTxError) as info:
        owner.build_batch("fund", ["-1"], vault=VAULT)
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError) and info.value.exit_code == ExitCode.INPUT
