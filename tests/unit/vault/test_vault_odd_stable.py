"""The vault with a stablecoin that behaves like USDT (no bool return values, approve from a
non-zero allowance reverts) and can charge a transfer fee (contracts/test/OddStable.sol).

A kit of its own (a second anvil, chain id 138): the mirror, then OddStable's code placed at the
mirror's cUSDC address before the overlay is built, so the Aave reserve, the USDTz pair, the WETH
pair and the desk all trade the odd token as cUSDC. Every leg runs in cUSDC.
Issue 12's last Info item: a fee-charging stablecoin made v1's borrow book more than arrived, after
which repay(max) and close failed; v2 books what arrived and counts the shortfall as a loss.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from eth_utils import keccak, to_checksum_address

from dealvault.artifacts import own
from dealvault.kit import vault_config
from dealvault.kit.anvil import start_anvil
from dealvault.kit.evm import TxFailed, deploy, impersonating, role_address, rpc, send, set_code
from dealvault.kit.funding import balance_of, fund
from dealvault.kit.mirror import install_mirror
from dealvault.kit.overlay import deploy_overlay, erc20
from tests.model import DEFAULT_RISK, TWAP_WINDOW

ETH = 10**18
USD = 10**6
MAX = 2**256 - 1
DEADLINE = 2**63
V1 = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "dealvault_v1.json").read_text())
V1_RISK_FIELDS = ("maxLtvBps", "maxExposureBps", "coreBps", "workingBps", "opportunisticBps", "rungs", "maxDeskFeeBps",
                  "oracleMaxAge", "minDiscountBps", "maxSlippageBps", "sellFloorPrice", "ethFloorPrice")
CLOSED = 6


@pytest.fixture(scope="module")
def kit():
    node = start_anvil()
    try:
        w3 = node.web3()
        mirror = install_mirror(w3)
        admin, collector = role_address("odd.admin"), role_address("odd.collector")
        with impersonating(w3, admin):
            odd = deploy(w3, own("OddStable"), admin, collector, sender=admin)
        set_code(w3, mirror.cusdc, "0x" + bytes(w3.eth.get_code(odd.address)).hex())
        # cUSDC is no FiatToken any more: the overlay funds it with the funding helper
        mirror = dataclasses.replace(mirror, cusdc_token=None)
        market = deploy_overlay(w3, mirror)
        acc = [to_checksum_address(a) for a in w3.eth.accounts]
        lens = deploy(w3, own("DealVaultLens"), sender=acc[0])
        yield dataclasses.make_dataclass("K", ["w3", "mirror", "market", "lens", "admin", "deployer", "owner",
                                               "operator", "guardian", "stranger"])(
            w3, mirror, market, lens, admin, acc[0], acc[1], acc[2], acc[3], acc[5])
    finally:
        node.stop()


@pytest.fixture
def fresh(kit):
    """Each test starts from the kit as built."""
    snap = rpc(kit.w3, "evm_snapshot")
    yield kit
    rpc(kit.w3, "evm_revert", [snap])


def _v2(k):
    cfg = vault_config(k.mirror, k.market, k.owner, k.operator, k.guardian, tuple(DEFAULT_RISK.values()))
    core = deploy(k.w3, own("DealVault"), cfg, sender=k.deployer, gas=25_000_000)
    return k.w3.eth.contract(address=core.address, abi=own("IDealVault").abi)


def _v1(k):
    risk = tuple(DEFAULT_RISK[f] for f in V1_RISK_FIELDS)
    cfg = vault_config(k.mirror, k.market, k.owner, k.operator, k.guardian, risk)
    c = k.w3.eth.contract(abi=V1["abi"], bytecode=V1["bytecode"])
    r = k.w3.eth.wait_for_transaction_receipt(c.constructor(cfg).transact({"from": k.deployer, "gas": 25_000_000}))
    assert r["status"] == 1
    return k.w3.eth.contract(address=r["contractAddress"], abi=V1["abi"])


def _error(vault, fn, sender) -> str:
    """The custom error (by name) a leg would revert with, from an eth_call; '' if it would pass."""
    try:
        fn.call({"from": sender})
        return ""
    except Exception as exc:  # web3: ContractCustomError / ContractLogicError with the revert data
        data = getattr(exc, "data", None) or (exc.args[1] if len(exc.args) > 1 else "") or str(exc)
        data = data if isinstance(data, str) else ""
        for item in vault.abi:
            if item.get("type") == "error":
                sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
                if data.startswith("0x" + keccak(text=sig)[:4].hex()):
                    return item["name"]
        return str(exc)


def _position(k, v, borrow=20_000 * USD):
    send(k.w3, v.functions.fund(), k.owner, value=100 * ETH)
    send(k.w3, v.functions.split(), k.operator)
    send(k.w3, v.functions.supply(k.mirror.weth9, 30 * ETH), k.operator)
    return send(k.w3, v.functions.borrow(k.mirror.cusdc, borrow), k.operator)


def _allowances(k, v) -> dict:
    out = {}
    for spender in (k.market.pool, k.market.uniswap_router, k.market.desk):
        for token in (k.mirror.cusdc, k.market.usdtz, k.mirror.weth9):
            a = erc20(k.w3, token).functions.allowance(v.address, spender).call()
            if a:
                out[(token, spender)] = a
    return out


def _rv(k, v):
    fn = next(a for a in own("DealVaultLens").abi if a.get("name") == "riskView")
    names = [c["name"] for c in fn["outputs"][0]["components"]]
    return dataclasses.make_dataclass("RV", names)(*k.lens.functions.riskView(v.address).call())


def test_the_whole_loop_with_a_usdt_style_stablecoin(fresh):
    """No bool returns and approve-from-non-zero reverts: every leg in cUSDC works, leaves no
    allowance behind (so the next approve starts from zero), and the books equal the balances."""
    k = fresh
    w3, cusdc = k.w3, k.mirror.cusdc
    odd = w3.eth.contract(address=cusdc, abi=own("OddStable").abi)
    # the token returns nothing from transfer (USDT's habit): an eth_call of transfer(x, 0)
    data = odd.functions.transfer(k.stranger, 0)._encode_transaction_data()
    assert bytes(w3.eth.call({"from": k.stranger, "to": cusdc, "data": data})) == b""
    v = _v2(k)
    _position(k, v)
    assert _allowances(k, v) == {}
    assert _rv(k, v).stableHeld == balance_of(w3, cusdc, v.address) == 20_000 * USD
    rpc(w3, "evm_increaseTime", [TWAP_WINDOW])
    rpc(w3, "evm_mine")  # the dry run of the next leg reads the latest block's time
    send(w3, v.functions.buy(cusdc, 15_000 * USD, 0, DEADLINE), k.operator)
    assert _allowances(k, v) == {}
    rv = _rv(k, v)
    held = rv.usdtzHeld
    assert held == balance_of(w3, k.market.usdtz, v.address) > 0
    send(w3, v.functions.redeem(cusdc, held), k.operator, gas=1_000_000)
    assert _allowances(k, v) == {}
    rv = _rv(k, v)
    assert rv.usdtzHeld == 0 and rv.stableHeld == balance_of(w3, cusdc, v.address) > 20_000 * USD
    send(w3, v.functions.repay(cusdc, MAX), k.operator)
    assert balance_of(w3, k.market.variable_debt_tokens["cUSDC"], v.address) == 0
    send(w3, v.functions.withdrawCollateral(k.mirror.weth9, 30 * ETH), k.operator)
    send(w3, v.functions.close(), k.operator)
    rv = _rv(k, v)
    assert rv.phase == CLOSED and rv.realizedPnlUsd > 0 and _allowances(k, v) == {}
    # a second approve to the same spender while the first is unspent reverts on this token:
    # proof the vault never left one (the router and the pool pulled exactly what they were given)
    with impersonating(w3, k.stranger):
        send(w3, odd.functions.approve(k.market.pool, 1), k.stranger)
        with pytest.raises(TxFailed, match=r"ApproveFromNonZero|would revert"):
            send(w3, odd.functions.approve(k.market.pool, 2), k.stranger)


def test_fee_charging_stablecoin_borrow_books_what_arrived(fresh):
    """Fee switch on (1%). v1 books the 20,000 cUSDC asked while 19,800 arrived: repay(max) then
    asks the vault for more than it holds and reverts, and close stays refused (DebtOutstanding).
    v2 books the 19,800, counts the 200 short as the operator's realized loss (OperatorLoss), repays
    what it holds, and with the owner topping up the rest (ownerRepay books what arrives) closes."""
    k = fresh
    w3, cusdc = k.w3, k.mirror.cusdc
    odd = w3.eth.contract(address=cusdc, abi=own("OddStable").abi)
    with impersonating(w3, k.admin):
        send(w3, odd.functions.setFee(100), k.admin)

    v1 = _v1(k)
    _position(k, v1)
    assert v1.functions.stableOf(cusdc).call() == 20_000 * USD  # booked what it asked for
    assert balance_of(w3, cusdc, v1.address) == 19_800 * USD  # 1% stayed with the token's collector
    assert _error(v1, v1.functions.repay(cusdc, MAX), k.operator) != ""
    assert _error(v1, v1.functions.close(), k.operator) == "DebtOutstanding"

    v = _v2(k)
    receipt = _position(k, v)
    borrowed = v.events.Borrowed().process_receipt(receipt)[0]["args"]
    assert (borrowed["amount"], borrowed["received"]) == (20_000 * USD, 19_800 * USD)
    loss = v.events.OperatorLoss().process_receipt(receipt)[0]["args"]
    rv = _rv(k, v)
    assert (loss["loss"], loss["total"], loss["budget"]) == (200 * USD, 200 * USD, rv.lossBudget)
    assert rv.stableHeld == balance_of(w3, cusdc, v.address) == 19_800 * USD
    assert rv.operatorLoss == 200 * USD
    send(w3, v.functions.repay(cusdc, MAX), k.operator)
    assert _rv(k, v).stableHeld == 0
    debt = balance_of(w3, k.market.variable_debt_tokens["cUSDC"], v.address)
    assert debt > 0  # what the fee took is still owed
    # the owner tops up: pulls debt + 1% + a margin, books what arrived, refunds the rest
    top_up = debt * 103 // 100
    fund(w3, cusdc, k.owner, top_up)
    send(w3, odd.functions.approve(v.address, top_up), k.owner)
    owner_before = balance_of(w3, cusdc, k.owner)
    r = send(w3, v.functions.ownerRepay(cusdc, top_up), k.owner)
    repaid = v.events.Repaid().process_receipt(r, errors=__import__("web3").logs.DISCARD)[0]["args"]["amount"]
    assert repaid == debt  # one call settled it: the pool took the debt, the rest went back
    # the owner paid top_up and got back what the pool did not take, less the token's fee on the refund
    arrived = top_up * 99 // 100
    refund = arrived - debt
    assert owner_before - balance_of(w3, cusdc, k.owner) == top_up - (refund - refund * 100 // 10_000)
    assert balance_of(w3, k.market.variable_debt_tokens["cUSDC"], v.address) == 0
    send(w3, v.functions.withdrawCollateral(k.mirror.weth9, 30 * ETH), k.operator)
    send(w3, v.functions.close(), k.operator)
    rv = _rv(k, v)
    assert rv.phase == CLOSED
    assert rv.stableHeld == balance_of(w3, cusdc, v.address)  # the books never exceed the balance


def test_kit_helpers_work_with_a_token_that_returns_no_bool(kit):
    """Issue 13: the kit's helpers (evm.send's simulation, drain_desk, swap_on_pair) decoded a
    bool from every transfer/approve and failed on a USDT-style stablecoin; twice in a row, the
    second approve starts from a leftover allowance (which such tokens refuse unless reset)."""
    from dealvault.kit.overlay import drain_desk, swap_on_pair

    w3, market, cusdc = kit.w3, kit.market, kit.mirror.cusdc
    issuer_before = balance_of(w3, cusdc, market.issuer)
    stock = balance_of(w3, cusdc, market.desk)
    assert stock > 0
    assert drain_desk(w3, market, cusdc, leave=10 * USD) == stock - 10 * USD
    assert balance_of(w3, cusdc, market.desk) == 10 * USD
    assert balance_of(w3, cusdc, market.issuer) == issuer_before + stock - 10 * USD
    trader = role_address("odd.trader")
    got = [swap_on_pair(w3, market, cusdc, market.usdtz, amount, trader=trader) for amount in (1_000 * USD, 2_000 * USD)]
    assert all(g > 0 for g in got) and got[1] > got[0]
    usdtz = erc20(w3, market.usdtz)
    assert usdtz.functions.balanceOf(trader).call() == sum(got)
