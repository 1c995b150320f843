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
import re

import pytest
import test_orchestrator as orch
from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from helpers_cli import ape_run
from web3 import Web3

from dealvault.errors import ExitCode, InputError
from dealvault.paths import ROOT
from dealvault.run import owner
from dealvault.run.owner import OwnerTxError, ParamState
from dealvault.vault import Param, Params, Phase, VaultClient
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
    p = ape_run("owner_tx", "fund", "-5", "--vault", VAULT, "--out", str(out))
    assert p.returncode == 2, p.stdout + p.stderr
    assert "negative" in p.stderr and "nothing written" in p.stderr
    assert not out.exists()
    p = ape_run("owner_tx", "resume", "--vault", VAULT, "--out", str(out))
    assert p.returncode == 0, p.stderr
    (t,) = json.loads(out.read_text())["transactions"]
    assert t["to"] == VAULT and t["data"] == "0x" + function_signature_to_4byte_selector("resume()").hex()


def execute(w3, sender, tx):
    """Send one batch transaction as ``sender`` (impersonated by the caller) and mine it; its receipt."""
    h = w3.eth.send_transaction({"from": sender, "to": tx["to"], "data": tx["data"], "value": int(tx["value"]), "gas": 1_000_000})
    r = w3.eth.wait_for_transaction_receipt(h)
    assert r["status"] == 1
    return r


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
        return execute(w3, owner_address, tx)

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


# --------------------------------------------------------------------------------------------
# meta.checksum as the Safe Transaction Builder computes it (dealvault.run.txbuilder)

TX_BUILDER = ROOT / "tests" / "fixtures" / "safe_tx_builder"  # origins in its README.md

#: the builder's own unit test batch (safe-global/safe-react-apps, apps/tx-builder/src/lib/checksum.test.js):
#: 0x4ecbfd... since calculateChecksum nulls meta.name, 0x832ecd... before (the plain serializeJSONObject)
BUILDER_TEST_BATCH = {
    "version": "1.0", "chainId": "4", "createdAt": 1646321521061,
    "meta": {"name": "test batch file", "txBuilderVersion": "1.4.0", "checksum": "",
             "createdFromSafeAddress": "0xDF8a1Ce35c9a6ACE153B4e0767942f1E2291a1Aa",
             "createdFromOwnerAddress": "0x49d4450977E2c95362C13D3a31a09311E0Ea26A6"},
    "transactions": [
        {"to": "0x49d4450977E2c95362C13D3a31a09311E0Ea26A6", "value": "0",
         "contractMethod": {"inputs": [{"internalType": "address", "name": "paramAddress", "type": "address"}], "name": "testAddress",
                            "payable": False},
         "contractInputsValues": {"paramAddress": "0x49d4450977E2c95362C13D3a31a09311E0Ea26A6"}},
        {"to": "0x49d4450977E2c95362C13D3a31a09311E0Ea26A6", "value": "0",
         "contractMethod": {"inputs": [{"internalType": "bool", "name": "paramBool", "type": "bool"}], "name": "testBool", "payable": False},
         "contractInputsValues": {"paramAddress": "", "paramBool": "false"}},
        {"to": "0x49d4450977E2c95362C13D3a31a09311E0Ea26A6", "value": "2000000000000000000",
         "data": "0x42f4579000000000000000000000000049d4450977e2c95362c13d3a31a09311e0ea26a6"},
    ],
}


def test_checksum_matches_the_safe_transaction_builder():
    """A batch the builder exported (1.18.2) and a batch of JSON.stringify's edge cases (checked
    under Node with the builder's algorithm) validate; the builder's own test vector, with and
    without meta.name nulled, comes out as its test expects."""
    from eth_utils import keccak

    from dealvault.run.txbuilder import checksum, checksum_valid, serialize

    exported = json.loads((TX_BUILDER / "export_1.18.2.json").read_text())
    assert checksum_valid(exported)
    edge = json.loads((TX_BUILDER / "edge_cases.json").read_text())
    assert checksum_valid(edge)
    assert checksum(BUILDER_TEST_BATCH) == "0x4ecbfd364aa6759983915644e73f8bd411e85a2dc306f252a387c2728c4db64c"
    assert "0x" + keccak(serialize(BUILDER_TEST_BATCH).encode()).hex() == \
        "0x832ecdb6653751ed00b79dede73864163e46e71815b72e11e506d6399bedffc9"
    # one character of the export changed: the builder would warn, and so does this
    tampered = json.loads((TX_BUILDER / "export_1.18.2.json").read_text().replace('"100000000000"', '"100000000001"'))
    assert not checksum_valid(tampered)
    edge["meta"]["description"] = edge["meta"]["description"].replace("\u00e9", "e\u0301")  # same look, other code points
    assert not checksum_valid(edge)


def _paths(value, prefix=()):
    """Every leaf of a JSON value, as a path."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))
    else:
        yield prefix


def _changed(batch, path):
    import copy

    out = copy.deepcopy(batch)
    cur = out
    for p in path[:-1]:
        cur = cur[p]
    v = cur[path[-1]]
    cur[path[-1]] = (not v) if isinstance(v, bool) else (v + 1) if isinstance(v, int) else (v + "0") if isinstance(v, str) else "x"
    return out


def test_checksum_covers_every_transaction_field_but_not_the_name(tmp_path):
    """Every leaf of every transaction (and the order of the transactions) changes meta.checksum;
    meta.name does not (the builder nulls it), nor the order of the keys; a batch written to a
    file and read back still validates."""
    from dealvault.run.txbuilder import checksum, checksum_valid

    dep = tmp_path / "dep.json"
    dep.write_text(json.dumps({"constructor_args": {"decoded": {"cusdt": to_checksum_address(CUSDT)}}}))
    b = owner.build_batch("owner-repay", ["cUSDT", "12.5"], vault=VAULT, deployment=dep, now_ms=1_764_489_600_000)
    assert checksum_valid(b)
    given = b["meta"]["checksum"]
    bare = {**b, "meta": {k: v for k, v in b["meta"].items() if k != "checksum"}}
    assert checksum(bare) == given
    leaves = [("transactions", *p) for p in _paths(b["transactions"])]
    assert len(leaves) >= 20  # to, value, data, contractMethod (inputs, name, payable), contractInputsValues, for both
    for path in leaves:
        assert checksum(_changed(bare, path)) != given, path
    assert checksum({**bare, "transactions": bare["transactions"][::-1]}) != given
    assert checksum({**bare, "meta": {**bare["meta"], "description": bare["meta"]["description"] + " "}}) != given
    assert checksum({**bare, "meta": {**bare["meta"], "name": "renamed in the builder"}}) == given
    assert checksum(dict(reversed(list(bare.items())))) == given
    out = owner.write_batch(b, tmp_path / "b.json")
    assert checksum_valid(json.loads(out.read_text()))


def test_owner_tx_offline_says_not_simulated(tmp_path):
    out = tmp_path / "p.json"
    said: list[str] = []
    assert owner.owner_tx("hold", [], vault=VAULT, out=out, say=said.append) == 0
    b = json.loads(out.read_text())
    assert owner.NOT_SIMULATED in b["meta"]["description"] and b["meta"]["dealvault"] == {"simulated": False}
    assert "NOT simulated" in said[0] and b["meta"]["checksum"] in said[0]


@pytest.mark.parametrize("action,args,refused", [
    ("hold", ["+", "+", "pause"], "an action is missing around '\\+'"),
    ("hold", ["+"], "an action is missing"),
    ("hold", ["+", "launch"], "unknown action 'launch'"),
])
def test_owner_tx_joined_actions_bad_input(tmp_path, action, args, refused):
    out = tmp_path / "o.json"
    with pytest.raises(OwnerTxError, match=refused):
        owner.build_batch(action, args, vault=VAULT)
    assert owner.owner_tx(action, args, vault=VAULT, out=out) == 2 and not out.exists()


# --------------------------------------------------------------------------------------------
# simulated in order from the vault's owner (prepare_batch, simulate_batch; dealvault.run.simulate)


def _rpc(w3) -> str:
    return str(w3.provider.endpoint_uri)


@pytest.fixture
def funded(chain, deployed):
    """The deployed vault (FUNDED phase) holding 10 ETH of capital, funded by its owner; (w3, vault, owner address)."""
    w3, vault = chain, deployed.venues.vault
    who = orch.signers(w3)[1].address
    (tx,) = owner.build_batch("fund", ["10"], vault=vault)["transactions"]
    w3.provider.make_request("anvil_impersonateAccount", [who])
    try:
        execute(w3, who, tx)
    finally:
        w3.provider.make_request("anvil_stopImpersonatingAccount", [who])
    return w3, vault, who


@pytest.mark.parametrize("action,args,reason", [
    ("resume", [], r"transaction 1 of 1 \(resume\) would revert .*: WrongPhase\(current=FUNDED\(0\), allowedMask=32\)"),
    ("accept", ["max-slippage-bps"], r"transaction 1 of 1 \(acceptParam\) .*: NothingQueued\(param=MaxSlippageBps\(5\)\)"),
    ("withdraw", ["ETH", "1"], r"transaction 1 of 1 \(withdraw\) .*: InsufficientBucket\(bucket=\d+, available=0, "
                               r"needed=1000000000000000000\)"),
    ("owner-repay", ["cUSDT", "1000"], r"transaction 2 of 2 \(ownerRepay\) .*: WrongPhase\(current=FUNDED\(0\)"),
    ("set", ["max-ltv-bps", "2500", "+", "revoke", "twap-window"],
     r"transaction 2 of 2 \(revokeParam\) .*: NothingQueued\(param=TwapWindow\(9\)\)"),
    ("fund", ["100000000"], r"transaction 1 of 1 \(fund\) .*: [Ii]nsufficient funds"),  # the owner has not that much ETH
])
def test_owner_tx_refuses_a_batch_that_would_revert(chain, deployed, tmp_path, action, args, reason):
    """With a node, owner_tx simulates the batch from the vault's owner and refuses it (exit 6,
    nothing written) naming the transaction, its method and the decoded revert reason."""
    w3 = chain
    out = tmp_path / "never.json"
    said: list[str] = []
    code = owner.owner_tx(action, args, vault=deployed.venues.vault, out=out, rpc=_rpc(w3), deployment=deployed.record_file,
                          say=said.append)
    assert code == ExitCode.REFUSED == 6, said
    assert not out.exists()
    (msg,) = said
    assert re.search(reason, msg) and msg.endswith("nothing written"), msg
    assert orch.signers(w3)[1].address in msg and "eth_simulateV1" in msg
    with pytest.raises(owner.BatchRefused, match=reason):
        owner.prepare_batch(w3, action, args, vault=deployed.venues.vault, lens=_lens(deployed), deployment=deployed.record_file)


def _lens(deployed) -> str:
    return json.loads(deployed.record_file.read_text())["lens"]["address"]


def test_batch_simulated_in_order_with_the_state_carried_over(funded, deployed, tmp_path):
    """`hold + withdraw ETH 2`: the withdrawal takes booked ETH, which the vault allows only in
    HOLDING, so it passes only after the hold in the same batch: alone, or before the hold, it is
    refused. The risk view lines before/after each transaction are the vault's own, read through
    the lens after executing the batch by impersonation."""
    w3, vault, who = funded
    lens = _lens(deployed)
    client = VaultClient(w3, vault, lens)
    for bad, index in ((["ETH", "2"], "1 of 1"), (["ETH", "2", "+", "hold"], "1 of 2")):
        with pytest.raises(owner.BatchRefused, match=rf"transaction {index} \(withdraw\) .*InsufficientBucket"):
            owner.prepare_batch(w3, "withdraw", bad, vault=vault, lens=lens)
    before = client.read().risk
    out = tmp_path / "unwind.json"
    assert owner.owner_tx("hold", ["+", "withdraw", "ETH", "2"], vault=vault, out=out, rpc=_rpc(w3), lens=lens) == 0
    b = json.loads(out.read_text())
    assert [t["contractMethod"]["name"] for t in b["transactions"]] == ["hold", "withdraw"]
    assert b["meta"]["name"] == "DealVault: hold + withdraw 2 ETH"
    sim = b["meta"]["dealvault"]
    assert sim["simulated"] is True and sim["method"] == "eth_simulateV1" and sim["from"] == who
    assert int(sim["block"]) == w3.eth.block_number

    # execute the batch as the owner; read the vault after each transaction
    views = [before]
    w3.provider.make_request("anvil_impersonateAccount", [who])
    try:
        for t in b["transactions"]:
            execute(w3, who, t)
            views.append(client.read().risk)
    finally:
        w3.provider.make_request("anvil_stopImpersonatingAccount", [who])
    assert (views[0].phase, views[1].phase, views[2].phase) == (Phase.FUNDED, Phase.HOLDING, Phase.HOLDING)
    eth = [v.coreEth + v.workingEth + v.opportunisticEth for v in views]
    assert eth[0] == eth[1] == 10 * 10**18 and eth[2] == 8 * 10**18  # the withdrawal came out of the books
    d = b["meta"]["description"]
    for i, (method, rb, ra) in enumerate(zip(("hold", "withdraw"), views, views[1:]), 1):
        assert f"tx {i} {method}: before: {owner.risk_text(rb)} -> after: {owner.risk_text(ra)}" in d
        step = sim["steps"][i - 1]
        assert (step["tx"], step["method"]) == (str(i), method)
        for key, rv in (("before", rb), ("after", ra)):
            read = rv.as_dict()
            assert step[key] == {k: read["phaseName"] if k == "phase" else read[k] if isinstance(read[k], bool) else str(read[k])
                                 for k in owner.RISK_FIELDS}
    assert owner.risk_text(views[0]).startswith("phase FUNDED, LTV 0 bps, exposure 0 bps, NAV $")
    assert owner.risk_text(views[0]).endswith(", debt 0, ETH buckets 10") and owner.risk_text(views[2]).endswith("ETH buckets 8")


class _NoSimulateV1(Web3.HTTPProvider):
    """A node without eth_simulateV1 (as geth before 1.14.9 answers it), otherwise the kit's."""

    def make_request(self, method, params):
        if method == "eth_simulateV1":
            return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "the method eth_simulateV1 does not exist/is not available"}}
        return super().make_request(method, params)

    def make_batch_request(self, requests):
        return [self.make_request(m, p) for m, p in requests]


def test_simulation_falls_back_to_an_anvil_fork(funded, deployed):
    """A node without eth_simulateV1: the batch is simulated on a throwaway anvil forking it, with
    the same risk views as eth_simulateV1 sees and the same refusal; without the node's URL it is
    refused (exit 6); the node itself is untouched."""
    from dealvault.run.simulate import SimulationUnavailable

    w3, vault, who = funded
    lens = _lens(deployed)
    plain = Web3(_NoSimulateV1(_rpc(w3)))
    b = owner.build_batch("hold", ["+", "withdraw", "ETH", "2"], vault=vault)["transactions"]
    head = w3.eth.block_number
    by_v1 = owner.simulate_batch(w3, b, vault=vault, lens=lens)
    by_fork = owner.simulate_batch(plain, b, vault=vault, lens=lens, fork_url=_rpc(w3))
    assert (by_v1.method, by_fork.method) == ("eth_simulateV1", "anvil fork")
    assert by_fork.owner == by_v1.owner == who and by_fork.block == by_v1.block == head
    assert [owner.risk_text(v) for v in (by_fork.before, *by_fork.after)] == [owner.risk_text(v) for v in (by_v1.before, *by_v1.after)]
    assert by_fork.after[-1].phase == Phase.HOLDING
    with pytest.raises(owner.BatchRefused, match=r"transaction 1 of 2 \(withdraw\).*InsufficientBucket.*anvil fork"):
        owner.simulate_batch(plain, b[::-1], vault=vault, lens=lens, fork_url=_rpc(w3))
    with pytest.raises(SimulationUnavailable, match=r"no eth_simulateV1.*no node URL") as info:
        owner.simulate_batch(plain, b, vault=vault, lens=lens)
    assert info.value.exit_code == ExitCode.REFUSED
    assert w3.eth.block_number == head and VaultClient(w3, vault, lens).read().risk.phase == Phase.FUNDED


def test_owner_tx_cli_exit_6_for_a_batch_that_would_revert(chain, deployed, tmp_path):
    out = tmp_path / "never.json"
    p = ape_run("owner_tx", "resume", "--vault", deployed.venues.vault, "--rpc", _rpc(chain),
                "--deployment", str(deployed.record_file), "--out", str(out))
    assert p.returncode == 6, p.stdout + p.stderr
    assert "transaction 1 of 1 (resume) would revert" in p.stderr and "WrongPhase(current=FUNDED(0)" in p.stderr
    assert "nothing written" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()


def test_owner_tx_node_down_or_not_a_vault(chain, deployed, tmp_path):
    """A node that does not answer, or a --vault that is no vault: exit 5, one line, nothing written."""
    from dealvault.kit.anvil import free_port

    out = tmp_path / "never.json"
    said: list[str] = []
    assert owner.owner_tx("hold", [], vault=VAULT, out=out, rpc=f"http://127.0.0.1:{free_port()}", lens=_lens(deployed),
                          say=said.append) == ExitCode.CHAIN
    assert "could not be reached" in said[-1] and said[-1].endswith("nothing written") and "\n" not in said[-1]
    lens = _lens(deployed)
    assert owner.owner_tx("hold", [], vault=lens, out=out, rpc=_rpc(chain), lens=lens, say=said.append) == ExitCode.CHAIN
    assert f"cannot read the vault {lens}'s parameters through the lens {lens}" in said[-1]
    assert not out.exists()
