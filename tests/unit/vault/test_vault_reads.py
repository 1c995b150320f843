"""Which legs read the market, and the debt books: the gas cuts of the "Measured" issue, checked as
behaviour in the call trace (debug_traceTransaction, callTracer), not as gas numbers.

- A leg that checks caps with debt (borrow, buy, withdrawCollateral while debt remains) makes every
  read its checks need: the ETH/USD feed, the aToken's balanceOf, the debt as
  pool.getReserveNormalizedVariableDebt(stable) (v2: the vault's scaled debt books times the pool's
  index; no debt-token balanceOf on that path) and the pool's getUserAccountData cross-check.
- v2: split reads the oracle (the loss budget's base), so its snapshot carries marks (Fresh, the
  feed's price, no collateral, no debt); it reads neither an aToken nor the debt nor the pool.
- A light leg (fund, redeem, repay, addCollateral ...) makes none of those reads: its LegCompleted
  snapshot carries the books and OracleStatus.Unread.
- v2 (v1's "debt bit"): the scaled debt books live in storage slot 0. A repay(max) that clears the
  debt zeroes them, and the next withdrawCollateral makes no debt read at all (no index, no debt
  token, no LTV check): a light leg. The next borrow books the scaled debt again and the read comes
  back, with the LTV cap binding at the same edge as on a fresh vault.
- buy sends the caller's minOut to the router (no getAmountsOut quote: inside the leg the swap pays
  exactly the quote, so a quote-based bound could never bind); a pumped pair still fails the
  discount limit (v2: once the TWAP has caught up with it; before that, PriceAboveTwap).
- The books' widths: funding beyond a uint80 of wei (1,208,925 ETH) reverts with SafeCast's error
  and changes nothing (the ladder's top rung below 2**63: test_vault_roles).
"""

from __future__ import annotations

from math import isqrt

import ape
import pytest
from eth_abi import decode
from helpers_vault import (
    BPS,
    E6,
    ETH,
    PH,
    abal,
    account_data,
    assert_books,
    assert_unread,
    block_ts,
    coll_wei,
    cumulative_at,
    debt,
    feed,
    make_deal,
    max_debt,
    pair_prices_x112,
    reserves,
    risk_view,
    snapshot,
    to_e6,
    twap_ready,
    twap_x112,
    uni_out,
)

from dealvault.kit.evm import advance_time, rpc, set_balance
from dealvault.kit.mirror import set_eth_price
from dealvault.kit.overlay import DEADLINE, swap_on_pair

SEL_LATEST_ROUND = "0xfeaf968c"  # latestRoundData()
SEL_BALANCE_OF = "0x70a08231"  # balanceOf(address)
SEL_SCALED_BALANCE_OF = "0x1da24f3e"  # scaledBalanceOf(address)
SEL_ACCOUNT_DATA = "0xbf92857c"  # getUserAccountData(address)
SEL_NORMALIZED_DEBT = "0x386497fd"  # getReserveNormalizedVariableDebt(address)
SEL_AMOUNTS_OUT = "0xd06ca61f"  # getAmountsOut(uint256,address[])
SEL_SWAP_EXACT_IN = "0x38ed1739"  # swapExactTokensForTokens(uint256,uint256,address[],address,uint256)
MASK72 = 2**72 - 1


def trace(w3, receipt) -> list[tuple[str, str, str]]:
    """Every call in the transaction as (from, to, input), depth first (a DELEGATECALL's calls come
    from the delegating address: the extension's code calls as the vault)."""
    tx_hash = receipt.txn_hash if hasattr(receipt, "txn_hash") else receipt["transactionHash"]
    tx_hash = tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
    root = rpc(w3, "debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
    out: list[tuple[str, str, str]] = []

    def walk(frame):
        for c in frame.get("calls") or []:
            out.append((c["from"].lower(), (c.get("to") or "").lower(), (c.get("input") or "0x").lower()))
            walk(c)

    walk(root)
    return out


def calls(w3, receipt) -> list[tuple[str, str, str]]:
    """Every call in the transaction as (from, to, 4-byte selector), depth first."""
    return [(frm, to, data[:10]) for frm, to, data in trace(w3, receipt)]


def vault_calls(w3, receipt, vault) -> set[tuple[str, str]]:
    """(to, selector) of the calls the vault itself made."""
    me = vault.address.lower()
    return {(to, sel) for frm, to, sel in calls(w3, receipt) if frm == me}


def everything(w3, receipt) -> set[tuple[str, str]]:
    """(to, selector) of every call anywhere in the transaction."""
    return {(to, sel) for _, to, sel in calls(w3, receipt)}


def normalized_debt_args(w3, receipt, vault, pool: str) -> list[str]:
    """The stablecoins whose pool index the vault itself read (getReserveNormalizedVariableDebt)."""
    me, pool = vault.address.lower(), pool.lower()
    return ["0x" + data[34:74] for frm, to, data in trace(w3, receipt)
            if frm == me and to == pool and data[:10] == SEL_NORMALIZED_DEBT]


def market_reads(v) -> set[tuple[str, str]]:
    """The reads a snapshot's marks and the cap checks need (v2: the debt through the pool's index)."""
    return {(v.feed.lower(), SEL_LATEST_ROUND), (v.a_weth9.lower(), SEL_BALANCE_OF),
            (v.pool.lower(), SEL_NORMALIZED_DEBT), (v.pool.lower(), SEL_ACCOUNT_DATA)}


def debt_reads(v) -> set[tuple[str, str]]:
    """Every way to read the debt: the pool's index and the debt tokens' balances, scaled or not."""
    return {(v.pool.lower(), SEL_NORMALIZED_DEBT), (v.pool.lower(), SEL_ACCOUNT_DATA)} | {
        (t.lower(), sel) for t in (v.debt_cusdt, v.debt_cusdc) for sel in (SEL_BALANCE_OF, SEL_SCALED_BALANCE_OF)}


def scaled_books(w3, vault) -> tuple[int, int]:
    """(scaledDebtT, scaledDebtC): the low 72 and the next 72 bits of the vault's storage slot 0
    (DealVaultStorage), read raw."""
    word = int.from_bytes(w3.eth.get_storage_at(vault.address, 0), "big")
    return word & MASK72, (word >> 72) & MASK72


def scaled_balance(w3, debt_token: str, who) -> int:
    abi = [{"type": "function", "name": "scaledBalanceOf", "stateMutability": "view",
            "inputs": [{"type": "address", "name": "u"}], "outputs": [{"type": "uint256", "name": ""}]}]
    return w3.eth.contract(address=debt_token, abi=abi).functions.scaledBalanceOf(str(who.address)).call()


@pytest.fixture
def mk(w3, mirror, market, vault_factory, owner, operator):
    def build(**kw):
        return make_deal(vault_factory, w3, mirror, market, owner, operator, **kw)

    return build


def test_checked_legs_read_everything_light_legs_nothing(w3, mk):
    deal = mk()
    v, vault = deal.v, deal.vault
    fund_rx = deal.fund()
    price, _ = feed(w3, deal.mirror)
    split_rx = deal.split()
    deal.supply()
    borrow_rx = deal.borrow()
    buy_rx = deal.buy()
    redeem_rx = deal.redeem()
    repay_rx = deal.repay(1_000 * E6)
    add_rx = deal.add_collateral(ETH)
    reads = market_reads(v)
    # the risk-adding legs with debt: the vault's own reads and the pool cross-check, all of them;
    # the debt through the pool's index of the borrowed stable, never a debt token's balanceOf
    for rx in (borrow_rx, buy_rx):
        made = vault_calls(w3, rx, vault)
        assert reads <= made, reads - made
        assert normalized_debt_args(w3, rx, vault, v.pool) == [v.cusdt.lower()]
        assert (v.debt_cusdt.lower(), SEL_BALANCE_OF) not in made
        assert (v.debt_cusdc.lower(), SEL_BALANCE_OF) not in made
        assert snapshot(rx.decode_logs(vault.LegCompleted)[0].snapshot).oracleStatus == 0
    # v2: split reads the oracle and nothing else of the market; its snapshot has the marks
    made = everything(w3, split_rx)
    assert (v.feed.lower(), SEL_LATEST_ROUND) in made
    assert not ((reads | debt_reads(v)) - {(v.feed.lower(), SEL_LATEST_ROUND)}) & made
    snap = snapshot(split_rx.decode_logs(vault.LegCompleted)[0].snapshot)
    assert (snap.oracleStatus, snap.ethPrice, snap.collateralWeth, snap.debt, snap.ltvBps, snap.exposureBps) == (
        0, price, 0, 0, 0, 0)
    assert snap.nav == 100 * ETH * price // ETH  # all of it ETH buckets, 8 dp
    # fund and redeem check no cap: none of those reads, anywhere in the transaction
    for rx in (fund_rx, redeem_rx):
        made = everything(w3, rx)
        assert not ((reads | debt_reads(v)) & made), (reads | debt_reads(v)) & made
        assert_unread(snapshot(rx.decode_logs(vault.LegCompleted)[0].snapshot))
    # repay and addCollateral call the pool (which reads its own books): none of the reads by the vault
    for rx in (repay_rx, add_rx):
        made = vault_calls(w3, rx, vault)
        assert not (reads & made), reads & made
        assert_unread(snapshot(rx.decode_logs(vault.LegCompleted)[0].snapshot))
    # the lens's riskView at that block still has the marks
    rv = risk_view(vault)
    assert rv.oracleStatus == 0 and rv.debt == debt(w3, v, vault) > 0 and rv.collateralWeth > 0
    assert_books(vault, deal.books, v)


def test_buy_sends_the_callers_min_out_and_no_quote(w3, mk, market):
    deal = mk()
    deal.run("borrow")
    v, vault, pair = deal.v, deal.vault, market.pair_usdtz_cusdt
    t_split = block_ts(w3, deal.receipts[1][1].block_number)
    cum_split = cumulative_at(w3, market, pair, t_split)  # no trade on the pair since the split
    rx = deal.buy(min_out=1)
    assert (v.router.lower(), SEL_AMOUNTS_OUT) not in vault_calls(w3, rx, vault)
    swaps = [data for frm, to, data in trace(w3, rx)
             if frm == vault.address.lower() and to == v.router.lower() and data[:10] == SEL_SWAP_EXACT_IN]
    assert len(swaps) == 1
    amount_in, min_out = decode(["uint256", "uint256"], bytes.fromhex(swaps[0][10:10 + 128]))
    assert (amount_in, min_out) == (15_000 * E6, 1)  # the caller's minOut, as sent
    # a pair pumped past the discount limit
    r_z, r_c = reserves(w3, market, pair, v.usdtz)
    swap_on_pair(w3, market, v.cusdt, v.usdtz, isqrt(r_z * r_c) - r_c + 1)
    r_z, r_c = reserves(w3, market, pair, v.usdtz)
    assert r_c * 100 > 95 * r_z  # USDTz now dearer than the $0.95 limit on the pair
    amount = 1_000 * E6
    # v2: in the pump's wake the spot is far above the pair's TWAP since the split
    t = block_ts(w3) + 1
    spot, _, _ = pair_prices_x112(w3, market, pair)
    twap = twap_x112(cum_split, t_split, cumulative_at(w3, market, pair, t), t)
    assert spot * BPS > twap * (BPS + 100)
    rpc(w3, "evm_setNextBlockTimestamp", [t])
    with ape.reverts(vault.PriceAboveTwap, spotE6=to_e6(spot), twapE6=to_e6(twap)):
        vault.buy(v.cusdt, amount, 0, DEADLINE, sender=deal.operator)
    # once an observation of the pumped pair is twapWindow old, the leg reverts on what arrived
    deal.observe()
    twap_ready(w3, vault, v.cusdt)
    out = uni_out(amount, *reserves(w3, market, pair, v.cusdt))
    with ape.reverts(vault.PriceAboveLimit, priceE6=-(-amount * E6 // out), limitE6=950_000):
        vault.buy(v.cusdt, amount, 0, DEADLINE, sender=deal.operator)
    assert_books(vault, deal.books, v)


def test_full_repay_zeroes_the_scaled_debt_books_and_the_next_borrow_books_them(w3, mk, market):
    """v2's form of v1's debt bit: the scaled debt books in slot 0 follow the debt token's scaled
    balance; once a repay(max) clears the debt they are zero, and withdrawCollateral then reads no
    debt at all (and checks no LTV: nothing is owed). A borrow books them again and brings the read
    back."""
    deal = mk()
    deal.run("borrow")
    deal.buy()
    v, vault = deal.v, deal.vault
    assert scaled_books(w3, vault) == (scaled_balance(w3, v.debt_cusdt, vault), 0) and scaled_books(w3, vault)[0] > 0
    advance_time(w3, 30 * 86_400)
    set_eth_price(w3, deal.mirror, feed(w3, deal.mirror)[0])  # a fresh round: withdrawCollateral with debt needs one
    repay_rx = deal.repay(1_000 * E6)
    assert debt(w3, v, vault) > 0
    assert_unread(snapshot(repay_rx.decode_logs(vault.LegCompleted)[0].snapshot))
    assert scaled_books(w3, vault) == (scaled_balance(w3, v.debt_cusdt, vault), 0)
    # still owed: withdrawCollateral reads the debt (the pool's index) and checks the LTV
    rx = deal.withdraw_collateral(ETH)
    made = vault_calls(w3, rx, vault)
    assert market_reads(v) <= made
    assert (v.debt_cusdt.lower(), SEL_BALANCE_OF) not in made
    assert snapshot(rx.decode_logs(vault.LegCompleted)[0].snapshot).oracleStatus == 0
    # the USDTz redeemed: the books now hold more stable than the debt, so repay(max) clears it
    deal.redeem()
    assert deal.books.usdtz_held == 0
    assert deal.books.stable[v.cusdt] > debt(w3, v, vault)
    repay_rx = deal.repay()
    assert debt(w3, v, vault) == 0 and deal.last_repaid > 15_000 * E6
    assert scaled_books(w3, vault) == (0, 0) == (scaled_balance(w3, v.debt_cusdt, vault), 0)
    assert_unread(snapshot(repay_rx.decode_logs(vault.LegCompleted)[0].snapshot))
    # withdrawCollateral with nothing owed: no debt read of any kind, no LTV check, a light snapshot
    rx = deal.withdraw_collateral(ETH)
    made = vault_calls(w3, rx, vault)
    assert not (debt_reads(v) & made), debt_reads(v) & made
    assert (v.feed.lower(), SEL_LATEST_ROUND) not in made
    assert_unread(snapshot(rx.decode_logs(vault.LegCompleted)[0].snapshot))
    # the next borrow books the scaled debt again: the LTV cap binds at its edge, and the debt is read
    price, _ = feed(w3, deal.mirror)
    coll = coll_wei(deal.books, abal(w3, v, vault))
    edge = max_debt(coll, price, 3000, account_data(w3, market, vault)[0])
    with ape.reverts(vault.LtvAboveCap, capBps=3000):
        vault.borrow(v.cusdt, edge + 1, sender=deal.operator)
    rx = deal.borrow(edge)
    assert debt(w3, v, vault) == edge == risk_view(vault).debt
    assert scaled_books(w3, vault) == (scaled_balance(w3, v.debt_cusdt, vault), 0) and scaled_books(w3, vault)[0] > 0
    made = vault_calls(w3, rx, vault)
    assert market_reads(v) <= made
    assert normalized_debt_args(w3, rx, vault, v.pool) == [v.cusdt.lower()]
    assert (v.debt_cusdt.lower(), SEL_BALANCE_OF) not in made
    assert_books(vault, deal.books, v)


def test_funding_beyond_uint80_reverts_and_changes_nothing(w3, mk, project):
    """v2: fund books the capital in coreEth as well as fundedCapital; both are uint80. SafeCast's
    error is the extension's (fund runs there), not part of the IDealVault ABI."""
    deal = mk()
    ext = project.DealVaultExtension.at(deal.vault.address)  # the extension's ABI (its errors) at the vault
    limit = 2**80 - 1  # 1,208,925.8 ETH: the books' width, written in DealVaultStorage
    too_much = 2**80
    set_balance(w3, deal.owner.address, 2 * too_much)
    before = risk_view(deal.vault)
    with ape.reverts(ext.SafeCastOverflowedUintDowncast, bits=80, value=too_much):
        deal.vault.fund(value=too_much, sender=deal.owner)
    after = risk_view(deal.vault)
    assert after.fundedCapital == before.fundedCapital == 0 and after.legSeq == before.legSeq == 0
    assert after.coreEth == 0
    assert w3.eth.get_balance(deal.vault.address) == 0
    deal.fund(limit)
    assert w3.eth.get_balance(deal.vault.address) == limit
    rv = assert_books(deal.vault, deal.books, deal.v)
    assert rv.fundedCapital == rv.coreEth == limit and rv.phase == PH["FUNDED"]
    # one wei more on top of the limit: the same error, with the sum
    with ape.reverts(ext.SafeCastOverflowedUintDowncast, bits=80, value=too_much):
        deal.vault.fund(value=1, sender=deal.owner)
    assert_books(deal.vault, deal.books, deal.v)
