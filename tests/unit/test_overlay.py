"""The venues overlay: a real Aave V3 market, real Uniswap V2 pairs, USDTz and its desk.

Every test acts through the real contracts with named accounts (impersonated), funds them with
the funding helper, and checks balances before and after. ape reverts the chain after each test.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from eth_utils import keccak

from dealvault.artifacts import aave
from dealvault.kit import overlay as ov
from dealvault.kit.evm import TxFailed, act_as, advance_time, has_code, role_address
from dealvault.kit.funding import balance_of, fund
from dealvault.kit.mirror import set_eth_price

USD = 10**6  # cUSDT / cUSDC / USDTz base units
ETH = 10**18
MAX = 2**256 - 1
VARIABLE = 2
YEAR = 365 * 86_400


def _selector(sig: str) -> str:
    return keccak(text=sig)[:4].hex()


def _aave_error(code: str) -> str:
    """How an Aave V3 error (a numeric revert string, see Errors.sol) shows in TxFailed."""
    return f"execution reverted: {code}'"


def _reverts(w3, who, fn, match: str) -> None:
    """``fn`` from ``who`` reverts, and the revert data/reason contains ``match``."""
    with pytest.raises(TxFailed) as info:
        act_as(w3, who, fn)
    assert match.lower() in str(info.value).lower(), str(info.value)


def _supply_weth(w3, mirror, market, user, amount):
    fund(w3, mirror.weth9, user, amount)
    weth = ov.erc20(w3, mirror.weth9)
    pool = market.pool_contract(w3)
    act_as(w3, user, weth.functions.approve(market.pool, amount))
    act_as(w3, user, pool.functions.supply(mirror.weth9, amount, user, 0))


# --- build -----------------------------------------------------------------------------------


def test_kit_builds_fast_with_real_code(w3, mirror, market):
    """Mirror + overlay on a fresh anvil; the time is printed (the target is < 10 s)."""
    from dealvault.kit import start_kit

    t0 = time.perf_counter()
    kit = start_kit()
    try:
        print(f"\n[overlay] mirror + overlay build: {kit.build_seconds:.2f} s "
              f"(anvil start included: {time.perf_counter() - t0:.2f} s)")
        o = kit.overlay
        for addr in (o.pool, o.pool_configurator, o.aave_oracle, o.uniswap_router, o.pair_usdtz_cusdt, o.desk, o.usdtz):
            assert has_code(kit.w3, addr)
    finally:
        kit.stop()
    # The session's market is the same thing: the provider points at the pool we talk to.
    prov = w3.eth.contract(address=market.addresses_provider, abi=aave("PoolAddressesProvider").abi)
    assert prov.functions.getPool().call() == market.pool
    assert prov.functions.getPriceOracle().call() == market.aave_oracle
    # Router02's hard-coded pair init code hash is keccak256 of v2-core's pair creation code.
    assert ov.check_pair_init_code_hash().hex() == "96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"
    assert market.router_contract(w3).functions.factory().call() == market.uniswap_factory
    assert market.router_contract(w3).functions.WETH().call() == mirror.weth9


def test_build_time_of_overlay_alone(w3, mirror, market):
    """A second overlay on the session's mirror (fresh addresses): just the overlay's time."""
    t0 = time.perf_counter()
    other = ov.deploy_overlay(w3, mirror)
    print(f"\n[overlay] overlay build alone: {time.perf_counter() - t0:.2f} s")
    assert other.pool != market.pool and has_code(w3, other.pool)


# --- Aave -------------------------------------------------------------------------------------


def test_supply_borrow_accrue_repay_withdraw(w3, mirror, market):
    user = role_address("test.overlay.borrower")
    pool = market.pool_contract(w3)
    cusdt = ov.erc20(w3, mirror.cusdt)
    debt_token = ov.erc20(w3, market.variable_debt_tokens["cUSDT"])
    a_weth = ov.erc20(w3, market.a_tokens["WETH"])
    a_cusdt = market.a_tokens["cUSDT"]

    supplied = 10 * ETH
    _supply_weth(w3, mirror, market, user, supplied)
    assert balance_of(w3, mirror.weth9, user) == 0
    assert a_weth.functions.balanceOf(user).call() == supplied

    # 30 % LTV at the feed price: 10 ETH * $3,000 * 0.30 = 9,000 cUSDT.
    eth_usd = ov.erc_feed_answer(w3, mirror.eth_usd_feed)
    borrow = supplied * eth_usd * 30 // 100 // 10**8 // 10**12
    pool_cash_before = cusdt.functions.balanceOf(a_cusdt).call()
    act_as(w3, user, pool.functions.borrow(mirror.cusdt, borrow, VARIABLE, 0, user))
    assert cusdt.functions.balanceOf(user).call() == borrow
    assert pool_cash_before - cusdt.functions.balanceOf(a_cusdt).call() == borrow
    assert debt_token.functions.balanceOf(user).call() == borrow
    hf = pool.functions.getUserAccountData(user).call()[5]
    assert abs(Decimal(hf) / 10**18 - Decimal("2.75")) < Decimal("0.001")  # 0.825 / 0.30

    # A year later the debt has grown by the variable rate (2 % base + slope at ~0 % usage).
    advance_time(w3, YEAR)
    debt = debt_token.functions.balanceOf(user).call()
    growth = Decimal(debt) / borrow
    assert Decimal("1.019") < growth < Decimal("1.022"), growth

    # Repay in full (type(uint256).max): the debt is then exactly 0.
    fund(w3, mirror.cusdt, user, debt - borrow + 10 * USD)  # the interest, plus change
    held = cusdt.functions.balanceOf(user).call()
    act_as(w3, user, cusdt.functions.approve(market.pool, MAX))
    act_as(w3, user, pool.functions.repay(mirror.cusdt, MAX, VARIABLE, user))
    paid = held - cusdt.functions.balanceOf(user).call()
    assert debt_token.functions.balanceOf(user).call() == 0
    assert debt <= paid <= debt + debt // 10**6  # a block's worth of interest at most
    assert pool.functions.getUserAccountData(user).call()[1] == 0  # totalDebtBase

    # Withdraw everything: the WETH comes back (nobody borrowed WETH: no interest either way).
    act_as(w3, user, pool.functions.withdraw(mirror.weth9, MAX, user))
    assert balance_of(w3, mirror.weth9, user) == supplied
    assert a_weth.functions.balanceOf(user).call() == 0


def test_pool_reports_configured_ltv_and_threshold(w3, mirror, market):
    p = market.params
    pool = market.pool_contract(w3)
    for sym in ("WETH", "WETH10"):
        data = pool.functions.getConfiguration(market.token(sym)).call()[0]
        assert (data & 0xFFFF, (data >> 16) & 0xFFFF, (data >> 32) & 0xFFFF) == (
            p.weth_ltv, p.weth_liquidation_threshold, p.weth_liquidation_bonus)
        assert not (data >> 58) & 1  # WETH is not borrowable
    for sym in ("cUSDT", "cUSDC"):
        data = pool.functions.getConfiguration(market.token(sym)).call()[0]
        assert data & 0xFFFF == 0 and (data >> 58) & 1 == 1  # not collateral, borrowable
        assert (data >> 48) & 0xFF == 6  # decimals

    user = role_address("test.overlay.ltv")
    _supply_weth(w3, mirror, market, user, 10 * ETH)
    coll, debt, avail, lt, ltv, hf = pool.functions.getUserAccountData(user).call()
    eth_usd = ov.erc_feed_answer(w3, mirror.eth_usd_feed)
    assert coll == 10 * eth_usd and debt == 0
    assert (ltv, lt) == (p.weth_ltv, p.weth_liquidation_threshold)
    assert avail == coll * p.weth_ltv // 10_000

    # The LTV is enforced: just above it fails, just below it works.
    over = avail // 100 + 1 * USD  # base currency has 8 decimals, cUSDT 6
    _reverts(w3, user, pool.functions.borrow(mirror.cusdt, over, VARIABLE, 0, user), _aave_error("36"))  # COLLATERAL_CANNOT_COVER_NEW_BORROW
    under = avail // 100 - 1 * USD
    act_as(w3, user, pool.functions.borrow(mirror.cusdt, under, VARIABLE, 0, user))
    assert balance_of(w3, mirror.cusdt, user) == under


def test_liquidation_after_eth_drops_70_percent(w3, mirror, market):
    """The market supports liquidations: borrow at 30 % LTV, ETH -70 %, a liquidator repays."""
    user = role_address("test.overlay.liquidated")
    liquidator = role_address("test.overlay.liquidator")
    pool = market.pool_contract(w3)
    _supply_weth(w3, mirror, market, user, 10 * ETH)
    eth_usd = ov.erc_feed_answer(w3, mirror.eth_usd_feed)
    borrow = 10 * eth_usd * 30 // 100 // 100  # 9,000 cUSDT at $3,000
    act_as(w3, user, pool.functions.borrow(mirror.cusdt, borrow, VARIABLE, 0, user))

    new_price = eth_usd * 30 // 100
    set_eth_price(w3, mirror, new_price)
    hf = pool.functions.getUserAccountData(user).call()[5]
    assert hf < 10**18

    cover = borrow // 2
    fund(w3, mirror.cusdt, liquidator, cover)
    debt_before = ov.erc20(w3, market.variable_debt_tokens["cUSDT"]).functions.balanceOf(user).call()
    act_as(w3, liquidator, ov.erc20(w3, mirror.cusdt).functions.approve(market.pool, cover))
    act_as(w3, liquidator, pool.functions.liquidationCall(mirror.weth9, mirror.cusdt, user, cover, False))
    seized = balance_of(w3, mirror.weth9, liquidator)
    expected = cover * 10**12 * 10**8 // new_price * market.params.weth_liquidation_bonus // 10_000
    assert abs(seized - expected) <= 10**6, (seized, expected)
    assert balance_of(w3, mirror.cusdt, liquidator) == 0
    debt_after = ov.erc20(w3, market.variable_debt_tokens["cUSDT"]).functions.balanceOf(user).call()
    # the liquidation repays exactly `cover`; the seconds between the two reads may add a few
    # wei of interest (anvil's clock moves with wall time), never remove any
    assert 0 <= debt_after - (debt_before - cover) <= 100, (debt_before, debt_after, cover)


def test_frozen_and_paused_reserves_refuse(w3, mirror, market):
    user = role_address("test.overlay.frozen_reserve")
    pool = market.pool_contract(w3)
    _supply_weth(w3, mirror, market, user, 1 * ETH)
    ov.set_reserve_frozen(w3, market, mirror.cusdt, True)
    _reverts(w3, user, pool.functions.borrow(mirror.cusdt, 100 * USD, VARIABLE, 0, user), _aave_error("28"))  # RESERVE_FROZEN
    ov.set_reserve_frozen(w3, market, mirror.cusdt, False)
    act_as(w3, user, pool.functions.borrow(mirror.cusdt, 100 * USD, VARIABLE, 0, user))
    assert balance_of(w3, mirror.cusdt, user) == 100 * USD
    ov.set_reserve_paused(w3, market, mirror.weth9, True)
    _reverts(w3, user, pool.functions.withdraw(mirror.weth9, 10**15, user), _aave_error("29"))  # RESERVE_PAUSED
    assert balance_of(w3, mirror.weth9, user) == 0


# --- Uniswap V2 -------------------------------------------------------------------------------


@pytest.mark.parametrize("stable_sym", ["cUSDT", "cUSDC"])
def test_small_swap_near_configured_price_and_min_out(w3, mirror, market, stable_sym):
    stable = market.token(stable_sym)
    pair = market.usdtz_pair(stable_sym)
    price = market.params.usdtz_price
    assert abs(ov.pair_price(w3, market, pair, market.usdtz) - price) < Decimal("0.000001")

    router = market.router_contract(w3)
    trader = role_address(f"test.overlay.trader.{stable_sym}")
    amount_in = ov.units(market.params.usdtz_pair_depth) // 1000  # 0.1 % of the pair's depth
    fund(w3, market.usdtz, trader, amount_in)
    act_as(w3, trader, ov.erc20(w3, market.usdtz).functions.approve(market.uniswap_router, MAX))
    quote = router.functions.getAmountsOut(amount_in, [market.usdtz, stable]).call()[1]

    # Below amountOutMin: reverts, nothing moves.
    _reverts(w3, trader, router.functions.swapExactTokensForTokens(amount_in, quote + 1, [market.usdtz, stable], trader, ov.DEADLINE),
             "INSUFFICIENT_OUTPUT_AMOUNT")
    assert balance_of(w3, market.usdtz, trader) == amount_in and balance_of(w3, stable, trader) == 0

    pair_before = balance_of(w3, stable, pair)
    act_as(w3, trader, router.functions.swapExactTokensForTokens(amount_in, quote, [market.usdtz, stable], trader, ov.DEADLINE))
    got = balance_of(w3, stable, trader)
    assert got == quote
    assert balance_of(w3, market.usdtz, trader) == 0
    assert pair_before - balance_of(w3, stable, pair) == got
    executed = Decimal(got) / Decimal(amount_in)
    assert abs(executed - price) / price < Decimal("0.01"), executed


def test_weth_pair_at_feed_price(w3, mirror, market):
    """The deleverage leg: selling a little WETH for cUSDT gets about the feed price."""
    eth_usd = Decimal(ov.erc_feed_answer(w3, mirror.eth_usd_feed)) / 10**8
    assert abs(ov.pair_price(w3, market, market.pair_weth_cusdt, mirror.weth9) - eth_usd) < Decimal("0.01")
    got = ov.swap_on_pair(w3, market, mirror.weth9, mirror.cusdt, 1 * ETH)
    assert abs(Decimal(got) / USD - eth_usd) / eth_usd < Decimal("0.01")


def test_third_party_swap_moves_price(w3, mirror, market):
    before = ov.pair_price(w3, market, market.pair_usdtz_cusdt, market.usdtz)
    got = ov.swap_on_pair(w3, market, market.usdtz, mirror.cusdt, 1_000_000 * USD)  # 10 % of depth
    after = ov.pair_price(w3, market, market.pair_usdtz_cusdt, market.usdtz)
    assert got > 0 and after < before * Decimal("0.85")


# --- the desk ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stable_sym", ["cUSDT", "cUSDC"])
def test_desk_redemption_pays_one_to_one_minus_fee(w3, mirror, market, stable_sym):
    stable = market.token(stable_sym)
    desk = market.desk_contract(w3)
    holder = role_address("test.overlay.redeemer")
    amount = 100_000 * USD
    fund(w3, market.usdtz, holder, amount)
    act_as(w3, holder, ov.erc20(w3, market.usdtz).functions.approve(market.desk, amount))
    desk_stable = balance_of(w3, stable, market.desk)
    desk_usdtz = balance_of(w3, market.usdtz, market.desk)
    assert desk_stable == ov.units(market.params.desk_stock)

    act_as(w3, holder, desk.functions.redeem(stable, amount))
    fee = -(-amount * market.params.desk_fee_bps // 10_000)  # ceil, 0.1 % = 100 USDTz
    assert fee == 100 * USD
    assert balance_of(w3, stable, holder) == amount - fee
    assert balance_of(w3, market.usdtz, holder) == 0
    assert desk_stable - balance_of(w3, stable, market.desk) == amount - fee
    assert balance_of(w3, market.usdtz, market.desk) - desk_usdtz == amount


def test_desk_fee_and_cap_are_settable(w3, mirror, market):
    desk = market.desk_contract(w3)
    holder = role_address("test.overlay.redeemer.fee")
    ov.set_desk_fee(w3, market, 50, 2 * USD)  # 0.5 % + 2 USDTz
    fund(w3, market.usdtz, holder, 6_000_000 * USD)
    act_as(w3, holder, ov.erc20(w3, market.usdtz).functions.approve(market.desk, MAX))
    act_as(w3, holder, desk.functions.redeem(mirror.cusdc, 1_000 * USD))
    assert balance_of(w3, mirror.cusdc, holder) == 1_000 * USD - 5 * USD - 2 * USD
    # The per-request maximum (5M by default) holds.
    _reverts(w3, holder, desk.functions.redeem(mirror.cusdc, 5_000_000 * USD + 1), _selector("AboveMaxPerRequest(uint256,uint256)"))


def test_halted_desk_fails(w3, mirror, market):
    desk = market.desk_contract(w3)
    holder = role_address("test.overlay.redeemer.halted")
    fund(w3, market.usdtz, holder, 1_000 * USD)
    act_as(w3, holder, ov.erc20(w3, market.usdtz).functions.approve(market.desk, MAX))
    ov.halt_desk(w3, market)
    _reverts(w3, holder, desk.functions.redeem(mirror.cusdt, 1_000 * USD), _selector("RedemptionsHalted()"))
    assert balance_of(w3, market.usdtz, holder) == 1_000 * USD
    assert balance_of(w3, mirror.cusdt, holder) == 0
    ov.resume_desk(w3, market)
    act_as(w3, holder, desk.functions.redeem(mirror.cusdt, 1_000 * USD))
    assert balance_of(w3, mirror.cusdt, holder) == 999 * USD


def test_frozen_usdtz_holder_fails(w3, mirror, market):
    desk = market.desk_contract(w3)
    usdtz = ov.erc20(w3, market.usdtz)
    holder = role_address("test.overlay.redeemer.frozen")
    fund(w3, market.usdtz, holder, 1_000 * USD)
    act_as(w3, holder, usdtz.functions.approve(market.desk, MAX))
    ov.freeze_usdtz(w3, market, holder)
    _reverts(w3, holder, desk.functions.redeem(mirror.cusdt, 1_000 * USD), "blacklisted")
    _reverts(w3, holder, usdtz.functions.transfer(market.issuer, 1 * USD), "blacklisted")
    assert balance_of(w3, market.usdtz, holder) == 1_000 * USD
    assert balance_of(w3, mirror.cusdt, holder) == 0
    ov.unfreeze_usdtz(w3, market, holder)
    act_as(w3, holder, desk.functions.redeem(mirror.cusdt, 1_000 * USD))
    assert balance_of(w3, mirror.cusdt, holder) == 999 * USD


def test_paused_usdtz_blocks_transfers(w3, mirror, market):
    holder = role_address("test.overlay.paused")
    fund(w3, market.usdtz, holder, 10 * USD)
    ov.pause_usdtz(w3, market)
    _reverts(w3, holder, ov.erc20(w3, market.usdtz).functions.transfer(market.issuer, 1 * USD), "paused")
    ov.unpause_usdtz(w3, market)
    act_as(w3, holder, ov.erc20(w3, market.usdtz).functions.transfer(market.issuer, 1 * USD))
    assert balance_of(w3, market.usdtz, holder) == 9 * USD


def test_drained_desk_fails_like_a_real_one(w3, mirror, market):
    desk = market.desk_contract(w3)
    holder = role_address("test.overlay.redeemer.dry")
    fund(w3, market.usdtz, holder, 1_000 * USD)
    act_as(w3, holder, ov.erc20(w3, market.usdtz).functions.approve(market.desk, MAX))
    taken = ov.drain_desk(w3, market, mirror.cusdt, leave=500 * USD)
    assert taken == ov.units(market.params.desk_stock) - 500 * USD
    assert balance_of(w3, mirror.cusdt, market.desk) == 500 * USD
    _reverts(w3, holder, desk.functions.redeem(mirror.cusdt, 1_000 * USD), _selector("InsufficientLiquidity(address,uint256,uint256)"))
    # The other stablecoin is still stocked.
    act_as(w3, holder, desk.functions.redeem(mirror.cusdc, 1_000 * USD))
    assert balance_of(w3, mirror.cusdc, holder) == 999 * USD
